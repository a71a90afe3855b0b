"""Building blocks every shop context uses: settings, domain base classes, stores, logging."""
