"""liver_mm.serve"""
