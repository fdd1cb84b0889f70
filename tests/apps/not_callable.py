application = "a string is not a WSGI app"
