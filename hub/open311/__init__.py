"""Open311 GeoReport v2: services are problem classes, requests are cases (routes: hub.api.open311)."""
