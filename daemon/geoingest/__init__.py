"""geoingest: drop folders of GeoJSON in, validated and batched GeoJSON out."""

__version__ = "0.1.0"
