"""The token layer: TokenSource (cache, single-flight refresh, publish), stores, BearerAuth."""
