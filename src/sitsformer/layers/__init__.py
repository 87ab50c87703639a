"""Building blocks shared by every model: masked attention, MLP, embeddings, date encodings."""

from sitsformer.layers.attention import MaskedSelfAttention
from sitsformer.layers.date_encoding import (
    DATE_ENCODINGS,
    DateEncoding,
    continuous_doy,
    sinusoidal_encoding,
)
from sitsformer.layers.dropout import Dropout
from sitsformer.layers.embeddings import (
    Conv3dEmbed,
    PatchEmbed,
    conv3d_as_matmul,
    conv3d_dense_weight,
)
from sitsformer.layers.mlp import Mlp

__all__ = [
    "DATE_ENCODINGS",
    "continuous_doy",
    "Conv3dEmbed",
    "DateEncoding",
    "Dropout",
    "MaskedSelfAttention",
    "Mlp",
    "PatchEmbed",
    "conv3d_as_matmul",
    "conv3d_dense_weight",
    "sinusoidal_encoding",
]
