"""Renderer architectures as data: specs, parameter shapes and archive schemas (no ML framework)."""

from tac_core.architectures import hnerv_pair, mask_warp, output_bias, pose_field

__all__ = ["hnerv_pair", "mask_warp", "output_bias", "pose_field"]
