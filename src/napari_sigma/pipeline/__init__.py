"""The analysis from settings to result: lines, features, latent, phases, unmixing."""

from napari_sigma._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "AnalysisSettings": "settings",
        "settings_from_choices": "settings",
        "settings_to_json": "settings",
        "settings_from_json": "settings",
        "save_settings": "settings",
        "load_settings": "settings",
        "AnalysisResult": "result",
        "choose_lines": "analysis",
        "analyse": "analysis",
        "run_analysis": "analysis",
        "empty_pixels": "analysis",
        "phase_alternatives": "analysis",
        "Session": "session",
        "SessionPhase": "session",
        "save_session": "session",
        "load_session": "session",
        "FittedModel": "model",
        "save_model": "model",
        "load_model": "model",
        "apply_model": "model",
        "fit_model": "fitting",
        "model_from_result": "fitting",
    },
)
