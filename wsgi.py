"""What gunicorn serves (`gunicorn wsgi:app`) and what the flask CLI loads (FLASK_APP)."""
from portal import configure_logging, create_app

configure_logging()
app = create_app()
