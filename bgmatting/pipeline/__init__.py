"""The frame pipeline behind predict.py (and the output rendering shared with the web app).

A run mattes every frame of a source (an image, a folder, a video) with its paired plate or trimap and writes the
requested output types into a folder that appears only when the run finished:

- :mod:`~bgmatting.pipeline.render`     output type (com, pha, fgr, err, ref) → uint8 image, rendered in bands
- :mod:`~bgmatting.pipeline.pairing`    sources paired with plates/trimaps; plates aligned, resized or checked
- :mod:`~bgmatting.pipeline.outputs`    target backgrounds for ``com`` and the sink writing images or videos
- :mod:`~bgmatting.pipeline.output_dir` the output folder: refusal rules, ``.NAME.partial-PID`` staging, SIGTERM,
  clean-up of the staging folders of killed runs
- :mod:`~bgmatting.pipeline.run`        the loop: read ahead → predict → render → write behind, and its report
- :mod:`~bgmatting.pipeline.whole_process` predict.py timed whole against the official scripts (tools/benchmark.py)
- :mod:`~bgmatting.pipeline.ranks`      several processes (paddle.distributed.launch): shares, messages, bounded waits
  (predict.py and eval.py)
- :mod:`~bgmatting.pipeline.parts`      predict.py's per-rank parts and rank 0 joining them into the one output
"""
