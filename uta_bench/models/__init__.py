"""Model construction: UTA (timm Eva + open_clip text tower) and open_clip baselines."""
