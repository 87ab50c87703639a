"""sitsformer.tuning"""
