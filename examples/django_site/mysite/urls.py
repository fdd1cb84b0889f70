from django.urls import path

from . import views

urlpatterns = [
    path("", views.index),
    path("name", views.set_name),
    path("upload", views.upload),
    path("info", views.info),
]
