"""What a model predicts, read from metadata.json: the one owner of task kinds and output names.

``task`` is ``binary`` (``classes``, ``positive_class``, ``decision_threshold``), ``multiclass``
(``classes``: the class labels in the order of the probability columns) or ``regression``
(``output_name``: the v2 output tensor's name, ``predict`` unless set). The seed's
``binary_classification`` is read as ``binary``. Classifier runtimes answer probabilities
``[N, n_classes]``; regressors answer values ``[N]``.

Imports nothing heavy: the registry, the importer and the server all read it.
"""

from dataclasses import dataclass

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)
ALIASES = {"binary_classification": BINARY, "classification": BINARY}

# v2 output tensor names, as MLServer's and KServe's scikit-learn runtimes name them.
LABEL_OUTPUT = "predict"
PROBA_OUTPUT = "predict_proba"
DEFAULT_REGRESSION_OUTPUT = "predict"
DEFAULT_THRESHOLD = 0.5


_LABEL_DATATYPES = {True: "INT64", False: "BYTES"}


class TaskError(ValueError):
    """metadata.json describes a task the server cannot serve; the message names the field."""


@dataclass(frozen=True)
class Task:
    kind: str
    classes: tuple = ()           # classifiers: labels in probability-column order
    positive_index: int = 1       # binary
    threshold: float = DEFAULT_THRESHOLD   # binary
    output_name: str = DEFAULT_REGRESSION_OUTPUT  # regression

    @property
    def is_classifier(self) -> bool:
        return self.kind != REGRESSION

    @property
    def outputs(self) -> tuple[str, ...]:
        """The v2 output tensors, in the order they are returned when the request names none."""
        return (LABEL_OUTPUT, PROBA_OUTPUT) if self.is_classifier else (self.output_name,)

    @property
    def label_datatype(self) -> str:
        """v2 datatype of the label tensor: INT64 for integer labels, BYTES for strings."""
        return _LABEL_DATATYPES[all(type(c) is int for c in self.classes)]

    @property
    def drift_score(self) -> str:
        """What prediction drift compares, per row: one number from the model's answer."""
        if self.kind == BINARY:
            return "positive-class probability"
        return "highest class probability" if self.kind == MULTICLASS else "predicted value"

    def drift_scores(self, answers):
        """The per-row drift score of a [N, n_classes] or [N] answer array (see ``drift_score``)."""
        if self.kind == BINARY:
            return answers[:, self.positive_index]
        if self.kind == MULTICLASS:
            return answers.max(axis=1)
        return answers.reshape(-1)

    def describe(self) -> dict:
        """The task as metadata.json spells it."""
        if self.kind == BINARY:
            return {"task": BINARY, "classes": list(self.classes), "positive_class": self.classes[self.positive_index],
                    "decision_threshold": self.threshold}
        if self.kind == MULTICLASS:
            return {"task": MULTICLASS, "classes": list(self.classes)}
        return {"task": REGRESSION, "output_name": self.output_name}


def _label(value, field: str):
    # JSON keeps ints and strings apart; numpy integers from an estimator's classes_ are turned into ints.
    if isinstance(value, bool) or not isinstance(value, int | str):
        try:
            as_int = int(value)
        except (TypeError, ValueError):
            raise TaskError(f"{field}: class labels must be integers or strings, got {value!r}") from None
        if as_int != value:
            raise TaskError(f"{field}: class labels must be integers or strings, got {value!r}")
        return as_int
    return value


def task_from_metadata(metadata: dict, where: str = "metadata.json") -> Task:
    raw = metadata.get("task", BINARY)
    kind = ALIASES.get(raw, raw)
    if kind not in TASKS:
        raise TaskError(f"{where}: task must be one of {', '.join(TASKS)}, got {raw!r}")
    if kind == REGRESSION:
        name = metadata.get("output_name", DEFAULT_REGRESSION_OUTPUT)
        if type(name) is not str or not name:
            raise TaskError(f"{where}: output_name must be a non-empty string, got {name!r}")
        return Task(REGRESSION, output_name=name)
    classes = metadata.get("classes", [0, 1] if kind == BINARY else None)
    if type(classes) is not list:
        raise TaskError(f"{where}: classes must be the list of class labels, got {classes!r}")
    classes = tuple(_label(c, f"{where}: classes[{i}]") for i, c in enumerate(classes))
    if len(set(classes)) != len(classes):
        raise TaskError(f"{where}: classes must be distinct, got {list(classes)}")
    if kind == BINARY:
        if len(classes) != 2:
            raise TaskError(f"{where}: a binary task has exactly 2 classes, got {list(classes)}")
        positive = metadata.get("positive_class", classes[1])
        if positive not in classes:
            raise TaskError(f"{where}: positive_class {positive!r} not in classes {list(classes)}")
        threshold = metadata.get("decision_threshold", DEFAULT_THRESHOLD)
        if type(threshold) not in (int, float) or not 0.0 < threshold < 1.0:
            raise TaskError(f"{where}: decision_threshold must be a number between 0 and 1, got {threshold!r}")
        return Task(BINARY, classes, classes.index(positive), float(threshold))
    if len(classes) < 2:
        raise TaskError(f"{where}: a multiclass task has at least 2 classes, got {list(classes)}")
    return Task(MULTICLASS, classes)
