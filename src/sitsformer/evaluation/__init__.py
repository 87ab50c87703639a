"""sitsformer.evaluation"""
