"""An example user package: the workflows a shop would ship in its image."""
