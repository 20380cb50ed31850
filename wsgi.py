from cashless import create_app

app = create_app()
