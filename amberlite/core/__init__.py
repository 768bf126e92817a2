"""Small values every layer above media shares: entity ids, asset references, vectors.

Nothing here opens a store or reads a file (``entities`` wraps media access for a feature
function's views).
"""
