"""``clm serve``: a local web app that generates levels on demand from a
finished levels run, lets a person play them, and keeps their favourites in
the run folder as creative data (a person as the judge)."""
