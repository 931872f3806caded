"""liver_mm.study"""
