"""liver_mm.models"""
