"""The ``posts-pipeline`` command: a thin layer over ``pipeline.run.run`` and ``pipeline.generate``.

Every flag of ``run`` is also a config key (shown in its help), so the same setting can come
from a YAML file, a ``POSTS_PIPELINE__…`` environment variable or the command line.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from importlib import metadata

import dask.config
import yaml

from pipeline import config, settings
from pipeline.errors import PipelineError

log = logging.getLogger("pipeline")

EPILOG = """\
configuration: every option has a default in pipeline/pipeline.yaml; a --config FILE, then
POSTS_PIPELINE__<KEY> environment variables (nesting with "__", e.g.
POSTS_PIPELINE__CLUSTER__LOCAL__N_WORKERS=4), then flags override it. S3 credentials come from the
usual AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or profile; an S3-compatible endpoint
from --storage-option endpoint_url=http://host:9000. `posts-pipeline config` shows the result.
"""

# Flag destination → config key, for the flags of `run` that are settings.
RUN_SETTINGS = {
    "input": "input",
    "output": "output",
    "overwrite": "overwrite",
    "resume": "resume",
    "blocksize": "blocksize",
    "unpack_dir": "unpack-dir",
    "cluster": "cluster.kind",
    "scheduler": "cluster.scheduler-address",
    "n_workers": "cluster.local.n-workers",
    "threads_per_worker": "cluster.local.threads-per-worker",
    "memory_limit": "cluster.local.memory-limit",
    "dashboard_address": "cluster.local.dashboard-address",
    "processes": "cluster.local.processes",
    "image": "cluster.kubernetes.image",
    "namespace": "cluster.kubernetes.namespace",
    "kube_workers": "cluster.kubernetes.n-workers",
    "adapt": "cluster.kubernetes.adapt",
    "env_from_secret": "cluster.kubernetes.env-from-secrets",
    "start_timeout": "cluster.kubernetes.start-timeout",
    "idle_timeout": "cluster.kubernetes.idle-timeout",
    "html_parser": "clean.html-parser",
    "tag": "analytics.tag",
    "top": "analytics.top",
    "classifier_tags": "classifier.tags",
    "test_size": "classifier.test-size",
    "random_state": "classifier.random-state",
    "classifier": "classifier.enabled",
    "min_questions": "classifier.min-questions",
    "allow_malformed": "malformed.allow",
    "progress": "progress",
    "visualize": "visualize",
    "pushgateway": "metrics.pushgateway",
}
# Config key → the flag that sets it, for error messages.
FLAGS = {key: "--" + dest.replace("_", "-") for dest, key in RUN_SETTINGS.items()} | {
    "storage-options": "--storage-option"}


def _number(kind):
    """A flag's value as ``kind`` when it is one, else as given: the settings' check names the key and the range."""
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            return text
    parse.__name__ = kind.__name__
    return parse


def _auto_or_bool(text: str) -> bool | str:
    """``true``/``false`` as booleans, anything else as given (``auto``; the settings' check refuses the rest)."""
    return {"true": True, "false": False}.get(text.lower(), text)


def _key_value(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run the pipeline: read Posts.xml, analyse tags, train the classifier, write a report",
        description="Read Posts.xml (path, glob or s3:// URL), keep the questions, clean them, count the tags "
        "that co-occur with a chosen tag, train a classifier that tells two tags apart, and write "
        "report.json, report.html, the cleaned questions (Parquet), tag counts and the model to a run directory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io_group = p.add_argument_group("input and output")
    io_group.add_argument("--input", "-i", nargs="+", metavar="PATH_OR_URL",
                          help="Posts.xml files, globs or s3:// URLs [input]")
    io_group.add_argument("--output", "-o", metavar="DIR_OR_URL",
                          help="run directory to create, local or s3:// [output]")
    io_group.add_argument("--overwrite", action="store_true", default=None,
                          help="replace an existing run directory [overwrite]")
    io_group.add_argument("--resume", action="store_true", default=None,
                          help="reuse the blocks an interrupted run to this output finished, if its inputs and "
                          "settings are unchanged (else run anew) [resume]")
    io_group.add_argument("--blocksize", help="bytes of XML per task, e.g. 64MiB [blocksize]")
    io_group.add_argument("--unpack-dir", metavar="DIR_OR_URL",
                          help="where .7z/.gz/.bz2/.xz/.zst inputs are unpacked once, kept for later runs [unpack-dir]")
    io_group.add_argument("--storage-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                          help="an fsspec/s3fs option, e.g. endpoint_url=http://localhost:9000 (repeatable) "
                          "[storage-options]")
    cl = p.add_argument_group("cluster")
    cl.add_argument("--cluster", metavar="{local,scheduler,kubernetes}",
                    help="where to run (default local) [cluster.kind]")
    cl.add_argument("--scheduler", metavar="ADDRESS",
                    help="an existing scheduler, tcp://host:8786; implies --cluster scheduler "
                    "[cluster.scheduler-address]")
    cl.add_argument("--n-workers", type=_number(int), help="LocalCluster worker processes [cluster.local.n-workers]")
    cl.add_argument("--threads-per-worker", type=_number(int),
                    help="threads per LocalCluster worker [cluster.local.threads-per-worker]")
    cl.add_argument("--memory-limit",
                    help="memory limit per LocalCluster worker, e.g. 4GiB or auto [cluster.local.memory-limit]")
    cl.add_argument("--dashboard-address",
                    help="LocalCluster dashboard address, ':0' for any free port; auto (default): ':0' unless "
                    "the workers are threads of this process [cluster.local.dashboard-address]")
    cl.add_argument("--processes", metavar="{auto,true,false}", type=_auto_or_bool,
                    help="LocalCluster workers as processes (true) or threads of this process (false); auto "
                    "(default): threads for plain inputs of at most 256 MiB [cluster.local.processes]")
    cl.add_argument("--image", help="image of the Kubernetes scheduler and workers [cluster.kubernetes.image]")
    cl.add_argument("--namespace",
                    help="Kubernetes namespace (default: the driver pod's own) [cluster.kubernetes.namespace]")
    cl.add_argument("--kube-workers", type=_number(int), metavar="N",
                    help="Kubernetes workers to start [cluster.kubernetes.n-workers]")
    cl.add_argument("--adapt", metavar="MIN:MAX",
                    help="scale Kubernetes workers between MIN and MAX with the load [cluster.kubernetes.adapt]")
    cl.add_argument("--env-from-secret", action="append", metavar="SECRET",
                    help="a Secret whose keys (e.g. AWS_ACCESS_KEY_ID) become the Dask pods' environment, "
                    "by reference (repeatable) [cluster.kubernetes.env-from-secrets]")
    cl.add_argument("--start-timeout", metavar="DURATION",
                    help="give up (with the reason) if the Kubernetes cluster has not started by then, e.g. 5m "
                    "[cluster.kubernetes.start-timeout]")
    cl.add_argument("--idle-timeout", metavar="DURATION",
                    help="the operator deletes an idle Kubernetes cluster after this, e.g. 10m "
                    "[cluster.kubernetes.idle-timeout]")
    st = p.add_argument_group("stages")
    st.add_argument("--html-parser", metavar="{fast,bs4}",
                    help="HTML to text: fast (regex) or bs4 (BeautifulSoup) [clean.html-parser]")
    st.add_argument("--tag", help="count the tags that co-occur with this one (default python) [analytics.tag]")
    st.add_argument("--top", type=_number(int), help="how many tags to report [analytics.top]")
    st.add_argument("--classifier-tags", nargs=2, metavar=("TAG_A", "TAG_B"),
                    help="the two tags the classifier tells apart (default python r) [classifier.tags]")
    st.add_argument("--test-size", type=_number(float),
                    help="fraction of questions held back for scoring, in (0, 1) [classifier.test-size]")
    st.add_argument("--random-state", type=_number(int),
                    help="seed of the split and the classifier [classifier.random-state]")
    st.add_argument("--no-classifier", dest="classifier", action="store_false", default=None,
                    help="skip the classifier: analytics and Parquet only [classifier.enabled]")
    st.add_argument("--min-questions", type=_number(int), metavar="N",
                    help="skip a site's classifier when either tag has fewer labelled questions "
                    "[classifier.min-questions]")
    st.add_argument("--allow-malformed", action="store_true", default=None,
                    help="finish even when most lines of a site are malformed [malformed.allow]")
    ux = p.add_argument_group("output on the terminal")
    ux.add_argument("--progress", dest="progress", action="store_true", default=None,
                    help="show a progress bar [progress]")
    ux.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    ux.add_argument("--visualize", metavar="FILE",
                    help="write the task graph to FILE (.svg/.png; needs graphviz) [visualize]")
    ux.add_argument("--pushgateway", metavar="URL",
                    help="push the run's figures (metrics.prom) to this Prometheus Pushgateway once the results are "
                    "complete, e.g. http://pushgateway:9091 [metrics.pushgateway]")
    p.set_defaults(command=_run)


def _run(args) -> int:
    if args.scheduler and not args.cluster:
        args.cluster = "scheduler"
    options = dict(args.storage_option)
    flags = {key: getattr(args, dest) for dest, key in RUN_SETTINGS.items()}
    config.load(args.config, flags, flag_names=FLAGS)
    if options:
        config.load(flags={"storage-options": {**config.get("storage-options"), **options}}, environ={},
                    flag_names=FLAGS)
    checked = settings.load()  # every option, before anything starts
    if checked.cluster.kind == "local":
        from pipeline import cluster

        local = checked.cluster.local
        if not cluster.in_process(local, cluster.local_files(checked.input)):
            cluster.prepare_local(local)  # the workers' imports start now, beside ours
    from pipeline.run import run

    result = run()
    from pipeline.report import classifier_sentence

    counts = result.counts
    trained = [site for site in result.sites.values() if not site.classifier.reason]
    outcome = (f"{len(result.sites)} sites, a classifier for {len(trained)} of them" if result.many
               else classifier_sentence(next(iter(result.sites.values())).classifier).rstrip("."))
    print(f"{counts['questions']} questions ({counts['malformed']} malformed lines); {outcome}; "
          f"report: {config.redacted_url(result.output)}/{result.page}")
    return 0


def _add_generate(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="write a synthetic Posts.xml (deterministic for a seed)",
        description="Write a realistic synthetic Stack Exchange Posts.xml: questions and answers with HTML bodies, "
        "code and entities, Zipf-distributed tags (python and r among the most common), the quirks of real dumps.",
    )
    p.add_argument("--output", "-o", required=True, metavar="PATH_OR_URL", help="file to write (local or s3://)")
    p.add_argument("--size", default="20MB", help="approximate file size, e.g. 200MB (default 20MB)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--tag-form", choices=("angle", "pipe"), default="angle",
                   help="<a><b> (before 2024, default) or |a|b| (2024 on)")
    p.add_argument("--line-ending", choices=("crlf", "lf"), default="crlf",
                   help="crlf as in official dumps (default) or lf")
    p.add_argument("--no-bom", dest="bom", action="store_false", help="leave out the UTF-8 byte order mark")
    p.add_argument("--malformed-rate", type=float, default=0.0,
                   help="fraction of broken lines, to see how they are reported (default 0)")
    p.set_defaults(command=_generate)


def _generate(args) -> int:
    from pipeline.generate import Options, generate, parse_size

    config.load(args.config)
    options = Options(
        size=parse_size(args.size), seed=args.seed, tag_form=args.tag_form,
        line_ending="\r\n" if args.line_ending == "crlf" else "\n", bom=args.bom, malformed_rate=args.malformed_rate,
    )
    written = generate(args.output, options, config.get("storage-options"))
    print(f"wrote {written['rows']} rows ({written['bytes'] / 1e6:.1f} MB) to {written['path']}")
    return 0


def _add_config(sub) -> None:
    p = sub.add_parser("config", help="show the effective configuration (defaults, file and environment applied)")
    p.set_defaults(command=_show_config)


def _show_config(args) -> int:
    config.load(args.config)
    settings.load()  # a bad value is an error here too, not shown as if it were fine
    shown = config.redacted(dask.config.get(config.NAMESPACE))
    print(yaml.safe_dump({config.NAMESPACE: shown}, sort_keys=False), end="")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="posts-pipeline",
        description="Stack Exchange Posts.xml → tag analytics and a text classifier, on Dask "
        "(an embedded LocalCluster, an existing scheduler, or Kubernetes).",
        epilog="Start with: posts-pipeline generate -o Posts.xml && posts-pipeline run -i Posts.xml -o runs/first",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {metadata.version('posts-pipeline')}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", "-c", metavar="FILE", help="YAML file laid out like pipeline.yaml")
    common.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    common.add_argument("--quiet", "-q", action="store_true", help="log warnings and errors only")
    sub = p.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for add in (_add_run, _add_generate, _add_config):
        add(sub)
    for action in sub.choices.values():
        for a in common._actions:
            if a.dest != "help":
                action._add_action(a)
    return p


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: the run unwinds (clusters stopped, partial output removed), then exits 128 + signal."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def _interrupt(signum, frame):
    # Ctrl-C sends SIGINT, Kubernetes stops pods with SIGTERM: unwind the same way, once — a second signal
    # would interrupt the clean-up itself, which is bounded.
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=logging.WARNING, format=config.LOG_FORMAT, datefmt=config.LOG_DATE_FORMAT)
    log.setLevel(min(level, logging.INFO))  # our messages (driver.log has INFO); Dask's own stay at WARNING unless -v
    # distributed sets its loggers' levels from dask.config when it is first imported.
    dask.config.set({"logging.distributed": "info" if args.verbose else "warning"})
    logging.getLogger("distributed").setLevel(logging.INFO if args.verbose else logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # the terminal shows what --quiet/--verbose ask for
        handler.addFilter(config.RedactingFilter())  # no log line shows a URL's user and password
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return args.command(args)
    except PipelineError as e:
        print(f"posts-pipeline: error: {config.redacted_text(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        kept = config.get("resume")  # then the staging stays for the next --resume
        print("posts-pipeline: interrupted; "
              f"{'what it finished is kept for --resume' if kept else 'partial output removed'}", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def command() -> None:
    """The posts-pipeline command: ``main``, then an exit that leaves the driver's objects to the system
    rather than collecting them one by one first (``gc.freeze``: with pandas, pyarrow, dask and
    scikit-learn loaded, that collection is most of what an exit costs). Atexit handlers still run."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    command()
