"""Imports every model family so that its `@register_model` factories run. One line per family."""

# Each family module registers its variants with boxer.models.register_model when imported.
