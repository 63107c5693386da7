"""Websocket events LookDev sends to the browser that queued the prompt, in one place: the library
sends them with comfy_bridge.send_event, web/lookdev_names.js mirrors the names (its EVENTS keys
are the constants' names in camelCase) and web/lookdev_progress.js draws them;
tests/test_web_extension.py keeps the three in step. Every payload has:
  node       the sending node's execution id (its UNIQUE_ID, a string; "5:12" inside subgraph 5)
  prompt_id  the prompt being executed

lookdev.train.progress, after every training step (trainer/training/run.py):
  name          the LoRA's name
  step, total   steps done and steps of the whole LoRA (1..total; a resumed run starts above 1)
  loss          this step's training loss (mean over gradient-accumulation micro-batches)
  loss_smooth   bias-corrected exponential moving average of the losses (beta 0.9, resumed
                history included)
  lr            learning rate used for this step
  elapsed_s     seconds since this run's first step (renders and checkpoints included;
                latent caching and model loading not)
  eta_s         estimated seconds to the last step: this run's mean step time x steps left
  resumed_from  the step this run resumed at (0 for a fresh run); earlier steps are not re-sent
lookdev.train.preview, every validate_every steps before the last (the final renders are the
node's own preview images):
  step          the step the renders were made after
  images        [{filename, subfolder, type: "temp"}], one per validation prompt, for /view
  prompts       [str], the validation prompts, in the order of images
lookdev.train.done, once the LoRA file is saved and the final validation images are rendered:
  name, path    the LoRA's name and the absolute path of its .safetensors file
  steps         steps of the whole LoRA (resumed steps included)
  final_loss    the loss of the LoRA's last step (resumed history included; null if none)
  seconds       seconds this run's training loop took
  node_seconds  seconds the whole node took (latent caching, renders and saving included)
  phases        {phase: seconds}: caching, training, validation, saving
  loss_curve    the absolute path of the loss chart PNG (output/lookdev/<name>_loss.png)
  loss_image    {filename, subfolder, type: "output"} of that PNG, for /view
  images        [{filename, subfolder, type: "temp"}], the final LoRA's validation renders
  prompts       [str], their prompts
lookdev.render.progress, after every sampling step of a storyboard render:
  shot          the shot's text as the shot list gives it
  index, total  which shot (1..total) and how many shots this render has
  step, steps   sampling steps done in this shot (1..steps) and per shot
lookdev.render.encoding, after each distinct prompt a storyboard render encodes, before sampling:
  done, total   prompts encoded (1..total) and distinct prompts (positive and negative) to encode
lookdev.status, when a phase of a long node starts or moves on (trainer/status.py):
  phase         trainer: "caching", "training", "validation", "saving", "done";
                storyboard render: "done"
  text          the status line to show, e.g. "caching latents 3 / 16",
                "rendering validation images 2 / 3 (step 200)", "done: 6 frames in storyboard/seq01"
  done, total   the phase's progress when it counts something (else null)
"""

EVENT_TRAIN_PROGRESS = "lookdev.train.progress"
EVENT_TRAIN_PREVIEW = "lookdev.train.preview"
EVENT_TRAIN_DONE = "lookdev.train.done"
EVENT_RENDER_PROGRESS = "lookdev.render.progress"
EVENT_RENDER_ENCODING = "lookdev.render.encoding"
EVENT_STATUS = "lookdev.status"
