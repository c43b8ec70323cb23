"""Quality gates: checks speedrift itself runs on every agent diff before anything lands."""
