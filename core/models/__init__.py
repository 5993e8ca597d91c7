"""torch nn.Modules only, one file per architecture."""
