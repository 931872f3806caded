"""liver_mm.stats"""
