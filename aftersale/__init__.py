"""aftersale: post-purchase journeys with a contact policy that never harasses anyone."""

__version__ = "0.1.0"
