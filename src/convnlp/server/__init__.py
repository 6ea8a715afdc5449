"""`convnlp serve`: a model behind HTTP (``main``: the command; ``app``: the FastAPI application;
``batching``: concurrent requests gathered into one predict call; ``process``: a server process
of one's own, for tests and load figures; ``page.html``: the page to try a model)."""
