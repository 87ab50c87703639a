"""sitsformer.inference"""
