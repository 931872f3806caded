"""liver_mm.data"""
