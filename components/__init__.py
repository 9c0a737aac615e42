"""Pipeline steps: each module holds a plain, testable function and a thin ``@dsl.component``."""
