"""The Verity desktop application (PySide6). Imports core/, never the other way round."""
