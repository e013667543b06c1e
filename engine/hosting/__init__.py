"""Running it: connections and the payload codec, the dev and embedded servers, workers, and
the SDK runtime's lifetime."""
