"""An artifact's weights back in the model classes: the TorchScript twins hold each graph
as submodule `net` of the export wrappers (exporters.graphs.FeaturesExport / HeadExport), so
their state dicts load into fresh wrappers key for key. The eager runtime serves from this,
and `aia artifact regraph` exports the graphs again from it."""

from __future__ import annotations

from exporters.artifact import Artifact, ArtifactError, load_torchscript
from exporters.graphs import Dtype, FeaturesExport, HeadExport
from model.head import AIAHead
from model.network import FeatureGraph


def export_wrappers(artifact: Artifact, device: str = "cpu"
                    ) -> tuple[FeaturesExport, HeadExport]:
    """Both graphs rebuilt from the manifest's config, weights from the TorchScript files,
    in eval mode on `device`, at the artifact's dtype."""
    if any("torchscript" not in artifact.graphs[g] for g in ("features", "head")):
        raise ArtifactError(f"{artifact.root}: its weights are read from the TorchScript "
                            "files, and this artifact has none; export it with --format "
                            "torchscript too")
    dtype = Dtype(artifact.dtype).torch
    fresh = {"features": FeaturesExport(FeatureGraph(artifact.config), dtype),
             "head": HeadExport(AIAHead(artifact.config), dtype)}
    for graph, module in fresh.items():
        path = artifact.path(graph, "torchscript")
        traced = load_torchscript(path)
        # constants the trace keeps as buffers (normalisation) are rebuilt from the config
        constants = {n for n, _ in module.named_buffers()} - set(module.state_dict())
        result = module.load_state_dict(traced.state_dict(), strict=False)
        unexpected = set(result.unexpected_keys) - constants
        if result.missing_keys or unexpected:
            raise ArtifactError(f"{path}: weights do not fit the manifest's model_config "
                                f"(missing {result.missing_keys[:5]}, unexpected "
                                f"{sorted(unexpected)[:5]}); export the checkpoint again")
        module.eval().to(device)
    return fresh["features"], fresh["head"]  # type: ignore[return-value]
