"""The clients of outside platforms (cluster, cloud and tracking services), apart from the ML code."""
