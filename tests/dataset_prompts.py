"""API-format prompt pieces for the dataset and caption node tests."""


def loader(folder, **inputs):
    """A LookDev Load Dataset node at training resolution 128."""
    return {"class_type": "LookDevLoadDataset", "inputs": {
        "folder": str(folder), "trigger": "lkdv", "resolution": "custom", "custom_resolution": 128,
        "no_upscale": False, "repeats": 1, "recursive": True, "caption_extension": "txt",
        **inputs}}


def cached_nodes(result):
    """Ids of the nodes the executor took from its cache in a RunResult."""
    return next(data["nodes"] for event, data in result.messages if event == "execution_cached")
