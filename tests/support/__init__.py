"""The test suite's shared machinery: helpers and fixtures that several test files
use, so that no test module imports another. Modules with fixtures are registered as
plugins in tests/conftest.py (`pytest_plugins`); the others are imported as
`from support.<module> import ...` (pytest puts tests/ on sys.path)."""
