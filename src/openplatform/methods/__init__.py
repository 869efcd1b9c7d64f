"""Open API methods (PROTOCOL §4), registered declaratively."""
