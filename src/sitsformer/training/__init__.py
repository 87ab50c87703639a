"""sitsformer.training"""
