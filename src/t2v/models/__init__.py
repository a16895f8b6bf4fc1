"""Model registry, loading, device planning and tiny offline builders."""
