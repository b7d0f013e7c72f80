"""vlm-caption-train: LoRA supervised fine-tuning with trl's SFTTrainer on the prepared chat examples.

The backend is chosen first (model.choose_backend): unsloth's FastVisionModel (4-bit, gradient checkpointing)
when CUDA is present and unsloth imports, else transformers + peft; the logged reason says why. With
`model.name: tiny` the randomly initialised stand-in is built from code and saved as the base model.
Writes models/vlm-caption/{adapter,processor,base (tiny only),info.json}, metrics/vlm-caption_train.json and
plots/vlm-caption/loss.{csv,png}. Every `train.checkpoint_every` steps the Trainer saves a checkpoint (adapter,
optimizer, scheduler, RNG) in a scratch folder keyed by the params and input hashes; an interrupted run resumes
from the newest one and ends with the same adapter.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import warnings
from pathlib import Path
from typing import Any

from stages.common import checkpoint, distributed
from stages.common.cli import main
from stages.common.io import DataError, atomic_path, write_csv, write_json
from stages.common.params import to_dict
from stages.common.plots import line_plot
from stages.common.runtime import setup, thread_count, write_timings
from stages.common.tracking import stage_dep_hashes, tracked_run
from stages.vlm_caption import config, data, model

STAGE = "vlm-caption-train"


def sft_config(p: config.VlmCaptionParams, output_dir: str, device: Any) -> Any:
    from trl import SFTConfig

    t = p.train
    cuda = device.type == "cuda"
    return SFTConfig(
        output_dir=output_dir,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size // distributed.world(),  # the global batch stays the param
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.scheduler,
        optim=t.optim,
        # trl turns it on by default; on the tiny model it only recomputes every forward (unsloth path: as before)
        gradient_checkpointing=p.model.gradient_checkpointing,
        logging_steps=t.logging_steps,
        seed=p.seed,
        data_seed=p.seed,
        bf16=cuda,
        use_cpu=not cuda,
        save_strategy="steps" if t.checkpoint_every else "no",
        save_steps=t.checkpoint_every or 500,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
        # the collator builds every model input from `image`, `text` and `prompt`: trl must leave them alone
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        max_length=None,
    )


def counted_once(trainer_class: type) -> type:
    """trl's SFTTrainer whose per-step FLOP estimate (6 x tokens x parameters, for `total_flos`) counts the model's
    parameters once: transformers walks every module for it at every step, 5% of a tiny model's step on a CPU."""

    class SFTTrainerCountingOnce(trainer_class):
        parameters_without_embeddings: int | None = None

        def floating_point_ops(self, inputs: dict) -> int:
            name = getattr(self.model, "main_input_name", "input_ids")
            if name not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            if self.parameters_without_embeddings is None:
                self.parameters_without_embeddings = self.model.num_parameters(exclude_embeddings=True)
            return 6 * inputs[name].numel() * self.parameters_without_embeddings

    return SFTTrainerCountingOnce


def run(p: config.VlmCaptionParams, common: config.CommonParams, paths: config.Paths) -> dict:
    distributed.check_batch(p.train.batch_size, "vlm-caption.train.batch_size", common.nproc)
    if distributed.launch_if_needed(common.nproc):
        return {}
    # under torchrun the Trainer shards the data (DistributedSampler) and wraps the model in DDP itself
    device = distributed.init(setup(p.seed, common.device, thread_count(p.threads, common.threads), common.kernels))
    backend, reason = model.choose_backend(p.model.backend, device.type == "cuda")  # before transformers loads
    print(f"vlm-caption-train: backend {backend} ({reason})")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    import datasets
    from transformers import AutoProcessor
    from trl import SFTTrainer

    rows = data.load_split(paths.prepared, "train")
    if not rows:
        raise DataError(f"{paths.prepared / 'train.parquet'}: no training examples")
    train_set = datasets.Dataset.from_list([{k: r[k] for k in ("image", "text", "prompt")} for r in rows])
    tracked = {"seed": p.seed, "backend": backend, **{k: v for k, v in to_dict(p).items() if isinstance(v, dict)}}
    run_key = {"params": to_dict(p), "device": str(device), "deps": stage_dep_hashes(STAGE, paths.root)}
    scratch = checkpoint.scratch_dir(paths.checkpoints, run_key)
    resume = any(scratch.glob("checkpoint-*"))
    id_file = scratch / "mlflow_run_id"  # the interrupted run's MLflow run, continued on resume
    run_id = id_file.read_text().strip() if resume and id_file.is_file() else None
    start = time.time()
    with tracked_run(
        config.TASK, STAGE, tracked, common.mlflow and distributed.is_main(), paths.root, run_id=run_id
    ) as tracker:
        tracker.set_tags({"backend_reason": reason})
        if tracker.run_id:
            scratch.mkdir(parents=True, exist_ok=True)
            id_file.write_text(tracker.run_id)
        with atomic_path(paths.model) if distributed.is_main() else distributed.private_dir(paths.model) as out:
            out.mkdir()
            base: str | Path = p.model.name
            if p.model.name == config.TINY:
                from stages.vlm_caption import tiny_model

                tiny = tiny_model.build_model(
                    AutoProcessor.from_pretrained(paths.prepared / "processor"), tiny_model.tiny_config(p.model), p.seed
                )
                tiny.save_pretrained(out / "base")  # under torchrun transformers saves on rank 0 only
                base = distributed.broadcast(out / "base")  # so every rank loads rank 0's copy
            peft_model, processor = model.load_for_training(p, backend, base, paths.prepared / "processor", device)
            trainable = sum(q.numel() for q in peft_model.parameters() if q.requires_grad)
            total = sum(q.numel() for q in peft_model.parameters())
            trainer = (SFTTrainer if backend == "unsloth" else counted_once(SFTTrainer))(
                model=peft_model,
                args=sft_config(p, str(scratch), device),
                train_dataset=train_set,
                data_collator=model.CaptionCollator(processor, cache_images=p.train.cache_images),
                processing_class=processor,
            )
            if resume:
                print(f"resuming from {max(scratch.glob('checkpoint-*'), key=lambda c: int(c.name.split('-')[1]))}")
            result = trainer.train(resume_from_checkpoint=resume or None)
            if not distributed.is_main():
                return {}  # rank 0 writes every output
            if base != p.model.name:
                # the base was built in a temporary folder; record where it will be, so reruns are byte-identical
                for lora_config in peft_model.peft_config.values():
                    lora_config.base_model_name_or_path = str(paths.model / "base")
            with warnings.catch_warnings():
                # peft looks for the base's config at the recorded path, which exists only once `out` is renamed
                warnings.filterwarnings("ignore", message="Could not find a config file")
                peft_model.save_pretrained(out / "adapter")
            (out / "adapter" / "README.md").unlink(missing_ok=True)  # peft's model card names the temporary path
            processor.save_pretrained(out / "processor")
            info = {
                "backend": backend,
                "backend_reason": reason,
                "base": str(p.model.name),
                "tiny": base != p.model.name,
            }
            write_json(out / "info.json", info)
        history = [
            {"step": h["step"], "train_loss": round(float(h["loss"]), 6)}
            for h in trainer.state.log_history
            if "loss" in h
        ]
        for h in history:
            tracker.log_metrics({"train_loss": h["train_loss"]}, step=h["step"])
        summary = {
            "backend": backend,
            "backend_reason": reason,
            "model": p.model.name,
            "steps": int(result.global_step),
            "examples": len(rows),
            "final_train_loss": history[-1]["train_loss"] if history else None,
            "mean_train_loss": round(float(result.training_loss), 6),
            "trainable_parameters": trainable,
            "parameters": total,
            "lora": dataclasses.asdict(p.lora),
        }
        write_csv(paths.plots / "loss.csv", history, ["step", "train_loss"])
        line_plot(paths.plots / "loss.png", history, "step", ["train_loss"], "vlm-caption LoRA SFT", "loss")
        write_json(paths.train_metrics, summary)
        timings = {"train_seconds": round(time.time() - start, 1)}
        write_timings(paths.timings(STAGE), timings)
        tracker.log_metrics({"mean_train_loss": summary["mean_train_loss"], **timings})
        tracker.log_artifact(paths.plots / "loss.png")
    checkpoint.clear(scratch)
    print(
        f"vlm-caption-train: {summary['steps']} steps, loss {summary['final_train_loss']}, "
        f"{trainable:,} of {total:,} parameters trained, {timings['train_seconds']} s -> {paths.model}"
    )
    return summary


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
