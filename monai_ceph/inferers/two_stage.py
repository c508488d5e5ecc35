"""Two-stage global -> local landmark inference: coarse points from a global model, refined on local patches.

The global network sees the whole image at the model size; its heatmaps decode to coarse points, which are mapped
to the pixels of a second copy of the image at the local spacing (both images carry their source affine, see
:mod:`monai_ceph.transforms.spatial.array`). Around each coarse point a patch of a fixed physical size is cropped
(:class:`~monai_ceph.transforms.spatial.patches.LandmarkPatches`); the local network predicts the heatmaps of the
patch and landmark ``k`` is read from channel ``k`` of its own patch. With Expansive Exploration (Zhong et al.,
MICCAI 2019) five patches per landmark (the centred one and four at the corners of a square enlarged by
``epsilon``) are averaged in image coordinates, normalised by their maximum, thresholded and the centroid of the blob
around the maximum taken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from monai.inferers import Inferer, SimpleInferer

from monai_ceph.inferers.orientation import AS_GIVEN, OrientationInferer, upright, upright_matrix
from monai_ceph.shape.uncertainty import covariance_radius, covariance_to_source, heatmap_covariance
from monai_ceph.transforms.landmarks.array import landmark_visibility
from monai_ceph.transforms.landmarks.codec import GaussianHeatmapCodec
from monai_ceph.transforms.landmarks.inside import mask_outside_source
from monai_ceph.transforms.spatial.array import model_to_source_affine, transform_points
from monai_ceph.transforms.landmarks.prior import LandmarkPrior
from monai_ceph.transforms.spatial.patches import LandmarkPatches, landmarks_in_patches, sample_patches

__all__ = ["LandmarkRefiner", "TwoStageInferer"]


def _translation(offset) -> torch.Tensor:
    m = torch.eye(3, dtype=torch.float64)
    m[:2, 2] = torch.as_tensor(offset, dtype=torch.float64)
    return m


def _through(cov: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """``(K, 2, 2)`` covariances in each landmark's patch (or canvas) pixels -> image pixels, ``A cov A^T``."""
    a = matrices[..., :2, :2].to(torch.float64)
    return a @ cov.to(torch.float64) @ a.transpose(-1, -2)


class LandmarkRefiner:
    """Refine landmark positions on one image with a local network run on patches around them.

    With ``prior_sigma`` the local network also sees the coarse points: each patch gets one Gaussian channel per
    landmark at its coarse point (:class:`~monai_ceph.transforms.LandmarkPrior`, zeros outside the patch or for
    a NaN point), as the local stage was trained with ``local_prior.json``.

    Args:
        network: the local network, ``(M, C, *patch)`` -> ``(M, K, *patch)`` heatmaps (or logits).
        patch_size: patch size in mm (one number or one per dim).
        patch_spacing: patch spacing in mm/pixel.
        codec: the local stage's heatmap codec (decodes a single patch).
        logits: the network outputs ``BCEWithLogits`` logits.
        exploration: use Expansive Exploration (five patches per landmark merged in image coordinates).
        epsilon: enlargement of the explored square (side ``epsilon`` x patch), > 1.
        threshold: fraction of the merged maximum kept for the centroid (within 3 codec sigmas of the maximum).
        batch_size: patches per forward pass.
        prior_sigma: SD in mm of the coarse-point prior channels (``None``: the network sees the image only).
        recentre: extra passes, each re-cropping every patch around the previous pass's point (0: one pass).
    """

    def __init__(
        self,
        network: nn.Module,
        patch_size: Sequence[float] | float,
        patch_spacing: Sequence[float] | float,
        codec: GaussianHeatmapCodec | None = None,
        logits: bool = True,
        exploration: bool = False,
        epsilon: float = 1.8,
        threshold: float = 0.5,
        batch_size: int = 64,
        prior_sigma: float | None = None,
        recentre: int = 0,
    ) -> None:
        if not (math.isfinite(epsilon) and epsilon > 1):
            raise ValueError(f"epsilon must be a number > 1, got {epsilon!r}.")
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}.")
        self.network = network
        self.patcher = LandmarkPatches(patch_size, patch_spacing)
        self.codec = codec if codec is not None else GaussianHeatmapCodec()
        self.logits = logits
        self.exploration = exploration
        self.epsilon = float(epsilon)
        self.threshold = float(threshold)
        self.batch_size = int(batch_size)
        self.prior = None if prior_sigma is None else LandmarkPrior(prior_sigma)
        if isinstance(recentre, bool) or int(recentre) != recentre or recentre < 0:
            raise ValueError(f"recentre must be an integer >= 0, got {recentre!r}.")
        self.recentre = int(recentre)

    def _patches(self, img: torch.Tensor, matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """``(M, C, *patch)`` crops of ``img``, with the prior channels of ``points`` (image pixels) if any."""
        patches = sample_patches(img, matrices, self.patcher.spatial_size)
        if self.prior is None:
            return patches
        local = landmarks_in_patches(points, matrices, self.patcher.spatial_size)  # (M, K, 2), NaN outside
        prior = self.prior.channels(local, self.patcher.spatial_size, self.patcher.patch_spacing)
        return torch.cat([patches, prior.to(patches.dtype)], dim=1)

    def _predict(self, patches: torch.Tensor) -> torch.Tensor:
        device = next(self.network.parameters()).device
        self.network.eval()
        with torch.no_grad():
            out = [self.network(chunk.to(device)) for chunk in torch.split(patches, self.batch_size)]
        return torch.cat(out).as_subclass(torch.Tensor).float().cpu()

    def exploration_offsets(self, spacing) -> torch.Tensor:
        """``(5, 2)`` patch-centre offsets in image pixels: the centre and the corners of the enlarged square."""
        extent = self.patcher.patch_to_image(torch.zeros(1, 2), spacing)[0].diagonal()[:2] * torch.as_tensor(
            self.patcher.spatial_size, dtype=torch.float64
        )
        d = (self.epsilon - 1) * extent / 2
        signs = torch.tensor([[0, 0], [-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=torch.float64)
        return signs * d

    def __call__(self, image: torch.Tensor, points: torch.Tensor, spacing) -> dict[str, torch.Tensor]:
        """
        Args:
            image: the local image ``(C, dim0, dim1)`` (at about the patch spacing).
            points: ``(K, 2)`` coarse points in ``image``'s pixels; NaN rows stay NaN.
            spacing: mm/pixel ``(2,)`` of ``image``.

        Returns:
            ``"landmarks"`` ``(K, 2)`` float64 refined points in ``image``'s pixels, ``"confidence"`` ``(K,)``
            (peak probability; 0 for a NaN point), ``"covariance"`` ``(K, 2, 2)`` float64 in ``image``'s pixels
            (:func:`~monai_ceph.shape.heatmap_covariance` of the local heatmap, or of the merged map with
            exploration, around the refined point, through the patch's affine; NaN for a NaN point) and
            ``"outside"`` ``(K,)`` bool: the coarse point lies outside the image (refined from a padded patch).
        """
        img = torch.as_tensor(image).as_subclass(torch.Tensor)
        pts = torch.as_tensor(points, dtype=torch.float64).detach().cpu()
        k = len(pts)
        finite = torch.isfinite(pts).all(-1)
        outside = finite & ~landmark_visibility(pts, img.shape[1:]).bool()
        prior_points = pts.clone()  # NaN stays NaN: no prior channel for a missing point
        pts = torch.where(finite[:, None], pts, torch.zeros(()))  # refined anyway, reported NaN below
        for _ in range(1 + self.recentre):
            landmarks, confidence, covariance = self._refine(img, pts, spacing, prior_points)
            pts = landmarks  # the next pass crops (and places the priors) around this pass's points
            prior_points = torch.where(finite[:, None], landmarks, torch.nan)
        landmarks = torch.where(finite[:, None], landmarks, torch.nan)
        confidence = torch.where(finite, confidence.reshape(k).float(), torch.zeros(()))
        covariance = torch.where(finite[:, None, None], covariance, torch.nan)
        return {"landmarks": landmarks, "confidence": confidence, "covariance": covariance, "outside": outside}

    def _refine(self, img: torch.Tensor, pts: torch.Tensor, spacing, prior_points) -> tuple[torch.Tensor, ...]:
        """One pass: ``(landmarks, confidence, covariance)`` from the patches around ``pts``."""
        if self.exploration:
            return self._explore(img, pts, spacing, prior_points)
        k = len(pts)
        matrices = self.patcher.patch_to_image(pts, spacing)
        patches = self._patches(img, matrices, prior_points)
        maps = self._predict(patches)[torch.arange(k), torch.arange(k)]  # channel k of patch k
        local, confidence = self.codec.decode(maps[:, None], logits=self.logits)
        landmarks = torch.stack([transform_points(p.double(), m) for p, m in zip(local, matrices)])[:, 0]
        peaks = self.codec.to_heatmap_coords(local[:, 0].double())
        cov = heatmap_covariance(maps, peaks, covariance_radius(self.codec), logits=self.logits).double()
        return landmarks, confidence, _through(cov * self.codec.stride**2, matrices)

    def _explore(self, img: torch.Tensor, pts: torch.Tensor, spacing, prior_points) -> tuple[torch.Tensor, ...]:
        k, shape = len(pts), self.patcher.spatial_size
        offsets = self.exploration_offsets(spacing)  # (5, 2)
        centres = (pts[:, None] + offsets[None]).reshape(-1, 2)
        matrices = self.patcher.patch_to_image(centres, spacing).reshape(k, len(offsets), 3, 3)
        patches = self._patches(img, matrices.reshape(-1, 3, 3), prior_points)
        maps = self._predict(patches).reshape(k, len(offsets), -1, *shape)
        maps = maps[torch.arange(k), :, torch.arange(k)]  # (K, 5, *shape): channel k of landmark k's patches
        probs = torch.sigmoid(maps) if self.logits else maps
        # the canvas: the centred patch's grid grown by a margin covering the explored square
        scale = matrices[0, 0].diagonal()[:2]
        margin = torch.ceil(offsets.abs().max(0).values / scale).to(torch.int64)
        canvas_shape = [int(s + 2 * g) for s, g in zip(shape, margin)]
        canvas_to_image = matrices[:, 0] @ _translation(-margin.double())  # (K, 3, 3)
        canvas_to_patch = torch.linalg.solve(matrices, canvas_to_image[:, None].expand_as(matrices))
        flat = canvas_to_patch.reshape(-1, 3, 3)
        values = sample_patches(probs.reshape(-1, 1, *shape), flat, canvas_shape)
        values = values.reshape(k, len(offsets), *canvas_shape)
        ones = torch.ones(len(flat), 1, *shape)
        cover = sample_patches(ones, flat, canvas_shape).reshape(k, len(offsets), *canvas_shape)
        merged = values.sum(1) / cover.sum(1).clamp_min(1e-6)  # (K, *canvas): the average of the patches
        peak, index = merged.flatten(1).max(1)
        g0 = torch.arange(canvas_shape[0], dtype=torch.float64)[:, None]
        g1 = torch.arange(canvas_shape[1], dtype=torch.float64)[None]
        # the thresholded blob around the peak: pixels >= threshold * peak within 3 sigma of the argmax, so that a
        # second response elsewhere in the explored square does not pull the centroid off
        radius = 3 * self.codec.sigma / self.codec.stride
        i0, i1 = (index // canvas_shape[1])[:, None, None], (index % canvas_shape[1])[:, None, None]
        near = (g0 - i0) ** 2 + (g1 - i1) ** 2
        keep = (merged >= self.threshold * peak[:, None, None]) & (near <= radius**2)
        w = (merged * keep).double()
        total = w.flatten(1).sum(1).clamp_min(1e-12)
        centroid = torch.stack([(w * g0).flatten(1).sum(1), (w * g1).flatten(1).sum(1)], -1) / total[:, None]
        landmarks = torch.stack([transform_points(c[None], m)[0] for c, m in zip(centroid, canvas_to_image)])
        cov = heatmap_covariance(merged, centroid, covariance_radius(self.codec)).double()  # merged: probabilities
        return landmarks, peak, _through(cov, canvas_to_image)


class TwoStageInferer(Inferer):
    """MONAI Inferer for two-stage landmark detection: global heatmaps -> coarse points -> local refinement.

    The global heatmaps are decoded inside the source image (:func:`~monai_ceph.transforms.mask_outside_source`:
    the padding of a physical-scale input is never a coarse point).

    Called by MONAI's evaluators as ``inferer(inputs, network, local_image=..., local_spacing=...)``: give the
    evaluator ``prepare_batch=PrepareBatchExtraInput(extra_keys={"local_image": "local_image", "local_spacing":
    "local_spacing"})``. ``inputs`` is the global model input and ``local_image`` the same image at the local
    spacing; both are ``MetaTensor`` batches carrying their source affine (``"original_affine"``).

    Returns a dictionary of ``(B, K, ...)`` tensors, all points in ``inputs``' pixels (so the usual
    :class:`~monai_ceph.transforms.LandmarksToSourced` maps them to source pixels; a ``FlattenSubKeysd(keys="pred")``
    post-processing step puts them beside the other keys): ``"pred_landmarks"`` and ``"pred_confidence"`` (refined),
    ``"pred_covariance"`` ``(B, K, 2, 2)`` (the refined points' covariance in ``inputs``' pixels, for
    :class:`~monai_ceph.shape.CovarianceToSourced`),
    ``"coarse_landmarks"`` and ``"coarse_confidence"`` (global stage), ``"coarse_outside"`` (1.0 where the coarse
    point fell outside the image and was refined from a padded patch).

    With an :class:`~monai_ceph.inferers.OrientationInferer` as ``inferer`` the global stage also decides which way
    each radiograph faces; the local stage then refines on the local image turned upright by the same decision
    (patches as the local network was trained), its points mapped back exactly, and the output has
    ``"orientation"``: the list of the ``B`` decisions (``"as given"``, ``"mirrored"``, ...).

    Args:
        local_network: the local stage's network.
        patch_size, patch_spacing, exploration, epsilon, threshold, batch_size, prior_sigma, recentre: as
            :class:`LandmarkRefiner`.
        codec: the global stage's codec.
        local_codec: the local stage's codec (default: ``codec``).
        logits: the global network outputs logits.
        local_logits: the local network outputs logits.
        inferer: how the global network is run on ``inputs`` (default :class:`monai.inferers.SimpleInferer`; an
            :class:`~monai_ceph.inferers.OrientationInferer` also turns the local stage's image upright).
    """

    def __init__(
        self,
        local_network: nn.Module,
        patch_size: Sequence[float] | float,
        patch_spacing: Sequence[float] | float,
        codec: GaussianHeatmapCodec | None = None,
        local_codec: GaussianHeatmapCodec | None = None,
        logits: bool = True,
        local_logits: bool = True,
        exploration: bool = False,
        epsilon: float = 1.8,
        threshold: float = 0.5,
        batch_size: int = 64,
        inferer: Inferer | None = None,
        prior_sigma: float | None = None,
        recentre: int = 0,
    ) -> None:
        super().__init__()
        self.codec = codec if codec is not None else GaussianHeatmapCodec()
        self.logits = logits
        self.inferer = inferer if inferer is not None else SimpleInferer()
        self.refiner = LandmarkRefiner(
            local_network,
            patch_size,
            patch_spacing,
            codec=local_codec if local_codec is not None else self.codec,
            logits=local_logits,
            exploration=exploration,
            epsilon=epsilon,
            threshold=threshold,
            batch_size=batch_size,
            prior_sigma=prior_sigma,
            recentre=recentre,
        )

    def __call__(  # type: ignore[override]
        self, inputs: torch.Tensor, network: nn.Module, *args: Any, local_image=None, local_spacing=None, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        if local_image is None or local_spacing is None:
            raise ValueError(
                "TwoStageInferer needs local_image and local_spacing: give the evaluator "
                "prepare_batch=PrepareBatchExtraInput(extra_keys={'local_image': 'local_image', "
                "'local_spacing': 'local_spacing'})."
            )
        if isinstance(self.inferer, OrientationInferer):
            orientation, _, heatmaps = self.inferer.decide(inputs, network, *args, **kwargs)
        else:
            orientation, heatmaps = None, self.inferer(inputs, network, *args, **kwargs)
        pred = mask_outside_source(heatmaps, inputs, self.codec.stride)
        coarse, coarse_confidence = self.codec.decode(pred, logits=self.logits)  # (B, K, 2) in inputs' pixels
        model_to_source = model_to_source_affine(inputs).reshape(-1, 3, 3)
        local_to_source = model_to_source_affine(local_image).reshape(-1, 3, 3)
        refined, confidence, covariance, outside = [], [], [], []
        for b in range(len(coarse)):
            model_to_local = torch.linalg.solve(local_to_source[b], model_to_source[b])
            points = transform_points(coarse[b].detach().cpu().double(), model_to_local)
            name = AS_GIVEN if orientation is None else orientation[b]
            image, spacing = local_image[b], torch.as_tensor(local_spacing[b]).cpu()
            to_upright = torch.eye(3, dtype=torch.float64)
            if name != AS_GIVEN:  # refine on the local image turned upright, as the local network was trained
                to_upright = upright_matrix(name, image.shape[-2:])
                image, points = upright(image, name), transform_points(points, to_upright)
                spacing = spacing[[1, 0]] if bool(to_upright[0, 0] == 0) else spacing  # a quarter turn swaps x, y
            out = self.refiner(image, points, spacing)
            local_to_model = torch.linalg.inv(to_upright @ model_to_local)
            refined.append(transform_points(out["landmarks"], local_to_model))
            confidence.append(out["confidence"])
            covariance.append(covariance_to_source(out["covariance"], local_to_model))  # (K, 2, 2): one affine
            outside.append(out["outside"])
        device = coarse.device
        return {
            "pred_landmarks": torch.stack(refined).float().to(device),
            "pred_confidence": torch.stack(confidence).float().to(device),
            "pred_covariance": torch.stack(covariance).float().to(device),
            "coarse_landmarks": coarse.float(),
            "coarse_confidence": coarse_confidence.float(),
            "coarse_outside": torch.stack(outside).float().to(device),
            **({} if orientation is None else {"orientation": orientation}),
        }
