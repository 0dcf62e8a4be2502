"""Starter files written by ``ubench new-method``. Not a registry home: importing these modules registers nothing."""
