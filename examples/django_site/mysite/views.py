from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def index(request):
    name = request.session.get("name", "stranger")
    return HttpResponse(f"<h1>Hello, {name}!</h1>")


@csrf_exempt
def set_name(request):
    request.session["name"] = request.POST.get("name", "")
    return HttpResponseRedirect("/")


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    return JsonResponse({"size": len(f.read()), "name": f.name})


def info(request):
    return JsonResponse({
        "script_name": request.META.get("SCRIPT_NAME"),
        "path": request.path,
        "path_info": request.path_info,
        "secure": request.is_secure(),
        "site": settings.SITE_NAME,
    })
