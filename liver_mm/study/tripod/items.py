"""The TRIPOD+AI checklist as data (Collins et al., BMJ 2024;385:e078378).

TRIPOD+AI is the reporting guideline for studies that develop or evaluate a clinical prediction model built
with regression or machine learning: 27 items, many with sub-items (52 in all). Each :class:`Item` carries the
checklist's number, its section and topic and a short paraphrase of what the item asks for; the wording of
the guideline itself is authoritative. :mod:`liver_mm.study.tripod.checklist` answers the items a study can answer from
its own records.
"""

from __future__ import annotations

from typing import NamedTuple

CITATION = "Collins GS et al. TRIPOD+AI statement. BMJ 2024;385:e078378"


class Item(NamedTuple):
    """One checklist item: ``number`` as printed (``"12c"``), section, topic and what it asks for."""

    number: str
    section: str
    topic: str
    asks: str


def _items(section: str, topic: str, *rows: tuple[str, str]) -> tuple[Item, ...]:
    return tuple(Item(number, section, topic, asks) for number, asks in rows)


CHECKLIST: tuple[Item, ...] = (
    *_items("Title", "Title", ("1", "identify the study as developing or evaluating a multivariable prediction "
                                    "model, the target population and the outcome to be predicted")),
    *_items("Abstract", "Abstract", ("2", "see the TRIPOD+AI for Abstracts checklist")),
    *_items("Introduction", "Background",
            ("3a", "healthcare context (diagnostic or prognostic) and rationale, with references to existing models"),
            ("3b", "target population and intended purpose in the care pathway, including the intended users"),
            ("3c", "known health inequalities between sociodemographic groups")),
    *_items("Introduction", "Objectives",
            ("4", "study objectives, including whether the study develops or validates a model (or both)")),
    *_items("Methods", "Data",
            ("5a", "sources of data, separately for development and evaluation; rationale; representativeness"),
            ("5b", "dates of the collected data: start and end of accrual and, if applicable, of follow-up")),
    *_items("Methods", "Participants",
            ("6a", "study setting (e.g. primary or secondary care), number and location of centres"),
            ("6b", "eligibility criteria for participants"),
            ("6c", "treatments received and how they were handled, if relevant")),
    *_items("Methods", "Data preparation",
            ("7", "data pre-processing and quality checking, and whether similar across sociodemographic groups")),
    *_items("Methods", "Outcome",
            ("8a", "definition of the outcome, time horizon, how and when assessed, rationale, consistency "
                   "across sociodemographic groups"),
            ("8b", "qualifications and demographics of the outcome assessors, if assessment is subjective"),
            ("8c", "actions to blind the assessment of the outcome")),
    *_items("Methods", "Predictors",
            ("9a", "choice of initial predictors and any pre-selection before model building"),
            ("9b", "definition of all predictors, how and when measured, and any blinding"),
            ("9c", "qualifications and demographics of the predictor assessors, if measurement is subjective")),
    *_items("Methods", "Sample size",
            ("10", "how the study size was arrived at (development and evaluation) and why it suffices; any "
                   "sample size calculation")),
    *_items("Methods", "Missing data", ("11", "how missing data were handled; reasons for omitting any data")),
    *_items("Methods", "Analytical methods",
            ("12a", "how the data were used (development, evaluation), including any partitioning"),
            ("12b", "how predictors were handled (functional form, rescaling, transformation, standardisation)"),
            ("12c", "type of model, rationale, model-building steps, hyperparameter tuning, internal validation"),
            ("12d", "how heterogeneity in parameters and performance across clusters was handled and quantified"),
            ("12e", "all measures and plots of model performance (discrimination, calibration, clinical "
                    "utility) and of model comparison, with rationale"),
            ("12f", "any model updating (e.g. recalibration) arising from the evaluation"),
            ("12g", "for evaluation: how the model predictions were calculated (formula, code, object, API)")),
    *_items("Methods", "Class imbalance",
            ("13", "class imbalance methods, why and how, and any recalibration afterwards")),
    *_items("Methods", "Fairness", ("14", "approaches used to address model fairness and their rationale")),
    *_items("Methods", "Model output",
            ("15", "output of the model (probabilities, classification); thresholds and how they were chosen")),
    *_items("Methods", "Training versus evaluation",
            ("16", "differences between development and evaluation data in setting, eligibility, outcome and "
                   "predictors")),
    *_items("Methods", "Ethical approval",
            ("17", "the ethics committee that approved the study; informed consent or its waiver")),
    *_items("Open science", "Funding", ("18a", "source of funding and the role of the funders")),
    *_items("Open science", "Conflicts of interest", ("18b", "conflicts of interest and financial disclosures")),
    *_items("Open science", "Protocol", ("18c", "where the protocol can be accessed, or that none was prepared")),
    *_items("Open science", "Registration", ("18d", "registration (register name and number), or that there was "
                                                    "none")),
    *_items("Open science", "Data sharing", ("18e", "availability of the study data")),
    *_items("Open science", "Code sharing", ("18f", "availability of the analytical code")),
    *_items("Patient and public involvement", "Patient and public involvement",
            ("19", "patient and public involvement in design, conduct, reporting, interpretation or "
                   "dissemination, or that there was none")),
    *_items("Results", "Participants",
            ("20a", "flow of participants, numbers with and without the outcome, follow-up; a diagram may help"),
            ("20b", "characteristics overall and per data source or setting: dates, key predictors, treatments, "
                    "sample size, outcome events, follow-up, missing data; differences across demographic groups"),
            ("20c", "for evaluation: distribution of important predictors compared with the development data")),
    *_items("Results", "Model development",
            ("21", "number of participants and outcome events in each analysis (development, tuning, "
                   "evaluation)")),
    *_items("Results", "Model specification",
            ("22", "details of the full model (formula, code, object, API) to predict in new individuals and "
                   "allow third-party evaluation; any restrictions to access or re-use")),
    *_items("Results", "Model performance",
            ("23a", "performance estimates with confidence intervals, including key subgroups; plots"),
            ("23b", "results of any heterogeneity in performance across clusters")),
    *_items("Results", "Model updating", ("24", "results of any model updating and the updated model's "
                                                "performance")),
    *_items("Discussion", "Interpretation",
            ("25", "overall interpretation of the main results, including fairness, in the context of the "
                   "objectives and previous studies")),
    *_items("Discussion", "Limitations",
            ("26", "limitations (non-representative sample, sample size, overfitting, missing data) and their "
                   "effects on bias, uncertainty and generalisability")),
    *_items("Discussion", "Usability of the model in the context of current care",
            ("27a", "how poor quality or unavailable input data should be assessed and handled in use"),
            ("27b", "whether users interact with the input data or the model, and the expertise they need"),
            ("27c", "next steps for future research, for applicability and generalisability")),
)

NUMBERS: tuple[str, ...] = tuple(item.number for item in CHECKLIST)
