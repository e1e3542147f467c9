"""The two hyperparameter tables of the guide, chosen by ``mode``: a name from the other table is a client error.

Light imports only (the spec and the CLI import this module).
"""

from common.errors import HyperparameterError
from common.hyperparameters import INJECTED_PREFIXES, HyperparameterSchema

WORD2VEC = ("cbow", "skipgram", "batch_skipgram")
SUPERVISED = "supervised"
COMMON = ("mode", "vector_dim", "learning_rate", "epochs", "min_count", "buckets")
WORD2VEC_ONLY = ("batch_size", "evaluation", "min_char", "max_char", "negative_samples", "sampling_threshold",
                 "subwords", "window_size")
SUPERVISED_ONLY = ("early_stopping", "min_epochs", "patience", "word_ngrams")


def own_table(mode):
    return COMMON + (SUPERVISED_ONLY if mode == SUPERVISED else WORD2VEC_ONLY)


class ModeSchema(HyperparameterSchema):
    """The schema of both tables; ``parse`` keeps the table of the job's ``mode`` and refuses the other's names."""

    def parse(self, raw):
        values = super().parse(raw)
        mode = values["mode"]
        table = own_table(mode)
        given = [name for name in raw if not name.startswith(INJECTED_PREFIXES)]
        wrong = [name for name in given if name not in table]
        if wrong:
            name = wrong[0]
            owner = "supervised mode (the Text Classification table)" if name in SUPERVISED_ONLY else \
                "the Word2Vec modes cbow, skipgram and batch_skipgram (the Word2Vec table)"
            raise HyperparameterError(
                f"Invalid hyperparameter {name}={raw[name]!r}: it belongs to {owner}, not to mode={mode}. "
                f"Hyperparameters of mode={mode}: {', '.join(sorted(table))}")
        return {name: value for name, value in values.items() if name in table}
