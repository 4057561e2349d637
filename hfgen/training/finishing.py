"""The files a training run writes besides checkpoints (used by `hfgen.training.trainer`): ``training_args.json``
and the trackers' config before the first step; at the end the trained pipeline (``save_pretrained``, EMA weights
with ``--use_ema``), the final sample grid, ``loss.png`` and the family's figures, the model card and the Hub push.

The pipeline is saved first, so no figure that fails (`monitoring.draw_figure` turns that into a warning) can lose the
trained model.
"""

from __future__ import annotations

import dataclasses
import os
import platform

from hfgen.output_folder.layout import LOSS_PLOT, write_training_args
from hfgen.training.arguments import arguments_to_dict
from hfgen.training.checkpointing import write_failure
from hfgen.training.monitoring import Monitor, draw_figure
from hfgen.training.objectives.base import TrainingContext


def _scalars(config: dict) -> dict:
    return {k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))}


def write_run_config(objective, context: TrainingContext, accelerator, output_dir: str) -> None:
    """``training_args.json`` (secrets dropped, plus facts about the run) and the trackers' config, written by the
    main process into ``output_dir`` (created)."""
    args = context.training_args
    if accelerator.is_main_process:
        os.makedirs(output_dir, exist_ok=True)
        config = {"model": objective.name, **arguments_to_dict(context.data_args, args)}
        if context.model_args is not None:
            config.update(arguments_to_dict(context.model_args))
        config["num_processes"] = accelerator.num_processes
        # facts about the run, not flags: how many images were trained on and where the labels came from
        config["num_train_images"] = context.num_train_images
        config["labels"] = context.label_source  # None when the data has no labels
        if context.num_classes:
            config["num_classes"] = context.num_classes
        write_training_args(output_dir, config)
        if args.report_to != "none":
            from hfgen.training.trackers import tracker_init_kwargs

            accelerator.init_trackers(
                f"hfgen-{objective.name}",
                config=_scalars(config),
                init_kwargs=tracker_init_kwargs(args.report_to, os.path.join(output_dir, "logs")),
            )


def finish_run(
    step: int, seconds: float, *, monitor: Monitor, context: TrainingContext, loss_key: str, last_checkpoint
) -> None:
    """Everything a run writes after its last step (main process only), in this order: the trained pipeline, the
    final sample grid (unless step ``step``'s exists), ``context.final_loss`` (the last value of history series
    ``loss_key``), the curves and figures, the model card, then ``--push_to_hub``.

    Args:
        step (`int`): optimiser steps done. seconds (`float`): wall-clock seconds of this run's loop.
        monitor (`Monitor`): the run's models, EMA, histories and last grid.
        context (`TrainingContext`): the run's arguments and facts (``final_loss`` is set here).
        loss_key (`str`): the history series of the model card's final loss (GANs: the generator's).
        last_checkpoint (`str`, *optional*): the last complete checkpoint, named when saving fails.

    Raises:
        CheckpointError: the pipeline could not be written (a full disk, a read-only folder).
    """
    from hfgen.output_folder.hub import push_to_hub

    _save_pipeline(monitor, last_checkpoint)
    if monitor.last_grid is None or not monitor.last_grid.endswith(f"step-{step:06d}.png"):
        draw_figure(lambda: monitor.save_sample_grid(step), f"the final sample grid (step {step})")
    final = monitor.history.losses.get(loss_key)
    context.final_loss = final[-1][1] if final else None
    _draw_curves(monitor, step)
    _write_card(monitor, context, step, seconds)
    args = context.training_args
    if args.push_to_hub:
        push_to_hub(monitor.output_dir, args.hub_model_id, token=args.hub_token, private=args.hub_private_repo)


def _save_pipeline(monitor: Monitor, last_checkpoint) -> None:
    """``save_pretrained`` of the objective's pipeline (EMA weights swapped in) into the output folder."""
    for model in monitor.models.values():
        model.eval()
    with monitor.ema_weights():  # the trained pipeline first: no figure below can lose it
        pipeline = monitor.objective.build_pipeline(monitor.models)
        try:
            pipeline.save_pretrained(monitor.output_dir, safe_serialization=True)
        except (OSError, RuntimeError) as err:
            failure = write_failure(err, monitor.output_dir, last_checkpoint)
            if failure is None:
                raise
            raise failure from None


def _draw_curves(monitor: Monitor, step: int) -> None:
    """``loss.png``, the objective's figures, ``fid.png`` (with ``--eval_steps``), and the curves to the trackers."""
    from hfgen.plotting import plot_loss_curves

    objective, output_dir, history = monitor.objective, monitor.output_dir, monitor.history
    draw_figure(
        lambda: plot_loss_curves(
            history.losses,
            os.path.join(output_dir, LOSS_PLOT),
            title=f"{objective.name} loss",
            ylabel=objective.loss_label,
        ),
        LOSS_PLOT,
    )
    draw_figure(lambda: objective.write_figures(output_dir, history.losses, history.evals), "figures")
    if history.evals.get("fid"):
        draw_figure(
            lambda: plot_loss_curves(
                {"FID": history.evals["fid"]},
                os.path.join(output_dir, "fid.png"),
                title=f"FID during training ({monitor.scorer.features_name} features)",
                ylabel="FID",
            ),
            "fid.png",
        )
    if monitor.args.report_to != "none":  # the curves as images, next to the grids logged on the way
        from hfgen.training.trackers import log_images

        curves = {"loss_curve": os.path.join(output_dir, LOSS_PLOT)}
        curves["eval/fid_curve"] = os.path.join(output_dir, "fid.png") if history.evals.get("fid") else None
        log_images(monitor.accelerator, curves, step)


def _write_card(monitor: Monitor, context: TrainingContext, step: int, seconds: float) -> None:
    """``README.md``: the objective's model card template rendered with `model_card_variables`."""
    from hfgen.output_folder.model_card import write_model_card

    objective, data_args = monitor.objective, context.data_args
    grid = os.path.relpath(monitor.last_grid, monitor.output_dir) if monitor.last_grid else None
    datasets = None  # data set names; the card writer keeps Hub ids in `datasets:` and tags the rest
    if data_args.train_data_dir is None:
        datasets = [data_args.dataset_name or "digits"]
    write_model_card(
        monitor.output_dir,
        objective.model_card_template,
        model_card_variables(objective, context, monitor.output_dir, step, seconds, grid),
        tags=(*objective.tags, "class-conditional") if context.num_classes else objective.tags,
        pipeline_tag=objective.pipeline_tag,
        datasets=datasets,
    )


def model_card_variables(
    objective, context: TrainingContext, output_dir: str, step: int, seconds: float, sample_grid: str | None
) -> dict:
    """The model card template's variables for a run: every argument (secrets dropped by the card writer), the
    family's own (`Objective.model_card_context`) and facts about the run (``step`` steps in ``seconds`` s, the
    sample grid's path relative to ``output_dir``)."""
    from hfgen.data.images.source import resolve_held_out_size
    from hfgen.output_folder.model_card import hub_id_placeholder, library_versions, training_command

    args, data_args = context.training_args, context.data_args
    repo_id = args.hub_model_id or hub_id_placeholder(output_dir)  # never a local path (issue 19)
    images_seen = step * args.train_batch_size * args.gradient_accumulation_steps * context.num_processes
    if data_args.train_data_dir is None and data_args.dataset_name in (None, "digits"):
        held_out_size = 360  # the digits' fixed test split
    else:
        held_out_size = resolve_held_out_size(
            data_args.dataset_name, data_args.train_data_dir, data_args.held_out_size
        )
    variables = dataclasses.asdict(args)
    if context.model_args is not None:
        variables.update(dataclasses.asdict(context.model_args))
    variables.update(objective.model_card_context(context))
    variables.update(
        model_name=os.path.basename(os.path.normpath(repo_id)),
        repo_id=repo_id,
        dataset_label=context.dataset_label,
        num_train_images=context.num_train_images,
        num_channels=context.num_channels,
        resolution=context.resolution,
        num_parameters_m=f"{context.num_parameters / 1e6:.2f}",
        sample_grid=sample_grid,
        global_step=step,
        epochs=f"{images_seen / max(1, context.num_train_images):.0f}",
        train_minutes=f"{seconds / 60:.1f}",
        hardware=f"{os.cpu_count()} CPU core(s) ({platform.machine()})",
        final_loss=f"{context.final_loss:.4f}" if context.final_loss is not None else "n/a",
        training_command=training_command(objective.name, data_args, args, context.model_args),
        versions=library_versions(),
        num_processes=context.num_processes,
        label_source=context.label_source,
        held_out_size=held_out_size,
        class_conditional=bool(context.num_classes),
        conditional_section=None,
    )
    if context.num_classes:
        from hfgen.output_folder.model_card import conditional_section

        family = "gan" if objective.ema_model == "generator" else objective.name
        variables["conditional_section"] = conditional_section(
            family, repo_id, context.id2label, context.label_source, args.conditioning_dropout_prob
        )
    return variables
