"""liver_mm.training"""
