"""Turn a database refusal (a CHECK, a unique constraint, a foreign key, a trigger) into a sentence a technician
reads, naming the rule on the error (``field``) for tests and logs.

Every named rule the schema holds has a sentence here (:data:`SENTENCES`); a test compares this table with the
CHECK constraints of the models and the triggers of the migrated database, so a new rule cannot arrive without one.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import IntegrityError

from biobank.domain.errors import BiobankError, ConflictError, ValidationError
from biobank.domain.fields import label_of

#: Unique constraints: what already exists.
_UNIQUE: dict[str, str] = {
    "uq_user_account_username": "A user with this name already exists",
    "uq_user_session_token_hash": "This sign-in session already exists; sign in again",
    "uq_api_token_token_hash": "This token already exists; create another",
    "uq_api_token_user_id_name": "This account already has a token with that name; choose another name or revoke the old one",
    "uq_api_idempotency_key_user_id_idempotency_key": "This Idempotency-Key was already used by this account",
    "uq_donor_code": "A donor with this code already exists",
    "uq_export_donor_export_record_id_donor_id": "This export already lists this donor",
    "uq_autopsy_case_code": "An autopsy with this case code already exists",
    "uq_autopsy_donor_id": "This donor already has an autopsy",
    "uq_autopsy_id_donor_id": "This autopsy is already recorded for this donor",
    "uq_consent_withdrawal_donor_id": "This donor has already withdrawn consent",
    "uq_treatment_line_donor_id_line_number": "This donor already has a treatment line with this number",
    "uq_lesion_donor_id_code": "This donor already has a lesion with this code",
    "uq_lesion_id_donor_id": "This lesion is already recorded for this donor",
    "uq_sampling_site_donor_id_code": "This donor already has a sampling site with this code",
    "uq_sampling_site_id_donor_id": "This sampling site is already recorded for this donor",
    "uq_specimen_code": "A specimen with this code already exists",
    "uq_specimen_barcode": "A specimen with this barcode already exists",
    "uq_specimen_id_donor_id": "This specimen is already recorded for this donor",
    "uq_container_code": "A container with this code already exists",
    "uq_specimen_location_container_id_position": "This position already holds a specimen (one position, one specimen)",
    "uq_specimen_location_specimen_id": "This specimen is already stored somewhere; move it instead",
    "ix_checkout_one_open_per_specimen": "This specimen is already checked out",
    "uq_checkout_specimen_id": "This specimen is already checked out",
    "uq_distribution_order_code": "An order with this code already exists",
    "uq_distribution_item_order_id_specimen_id": "This order already holds this specimen",
    "uq_derived_model_code": "A model with this code already exists",
    "uq_derived_model_id_donor_id": "This model is already recorded for this donor",
    "uq_model_passage_model_id_label": "This model already has a passage with this label",
    "uq_model_passage_id_model_id": "This passage is already recorded for this model",
    "uq_analysis_plan_code": "A plan with this code already exists",
    "uq_analysis_plan_name": "A plan with this name already exists",
    "uq_plan_donor_plan_id_donor_id": "This donor is already in the plan",
    "uq_plan_specimen_plan_id_specimen_id": "This specimen is already in the plan",
    "uq_analysis_plan_supersedes_id": "This plan has already been superseded by another version",
    "uq_sequencing_run_run_id": "A sequencing run with this run id already exists",
    "uq_sequencing_result_plan_specimen_id_run_id": "This run already has a result for this sample",
    "uq_sequencing_file_result_id_uri": "This result already lists this file",
    "uq_analysis_result_code": "A result with this code already exists",
}

#: CHECK constraints beyond a vocabulary: what the rule means, in the lab's words.
_CHECKS: dict[str, str] = {
    # users
    "ck_user_account_username_not_blank": "A user name cannot be empty",
    "ck_user_account_username_no_spaces": "A user name has no spaces",
    "ck_user_session_expires_after_start": "A sign-in session ends after it starts",
    "ck_user_session_token_hash_sha256": "A sign-in session is kept by the SHA-256 hash of its token",
    "ck_api_token_expires_after_start": "A token expires after it is created",
    "ck_api_idempotency_key_fingerprint_sha256": "An idempotency key is kept with the SHA-256 of its request",
    "ck_api_idempotency_key_key_not_empty": "An Idempotency-Key cannot be empty",
    "ck_api_token_token_hash_sha256": "A token is kept by the SHA-256 hash of its value",
    "ck_api_token_kind": "A token is personal or for a service account",
    "ck_api_token_name_not_blank": "A token needs a name",
    # donors and consent
    "ck_donor_code_safe": "A donor code uses only letters, digits, '.', '_' and '-' (no spaces or colons)",
    "ck_donor_age_at_death_range": "Age at death lies between 0 and 130 years",
    "ck_donor_hardy_scale_range": "The Hardy scale runs from 0 to 4",
    "ck_donor_diagnosis_before_death": "The diagnosis comes before death (days before death cannot be negative)",
    "ck_consent_withdrawal_reason_not_blank": "A withdrawal of consent needs a reason",
    "ck_treatment_line_line_number_positive": "Treatment lines are numbered from 1",
    "ck_treatment_line_start_before_death": "A treatment starts before death (days before death cannot be negative)",
    "ck_treatment_line_end_after_start": "A treatment ends after it starts and before death",
    "ck_clinical_event_before_death": "A clinical event happens before death (days before death cannot be negative)",
    # the autopsy
    "ck_autopsy_case_code_safe": "A case code uses only letters, digits, '.', '_' and '-' (no spaces or colons)",
    "ck_autopsy_death_time_when_started": "An autopsy that has started needs the time of death",
    "ck_autopsy_refrigerated_after_death": "The body cannot be refrigerated before death",
    "ck_autopsy_start_after_death": "The autopsy cannot start before death",
    "ck_autopsy_end_after_start": "The autopsy cannot end before it starts (and needs a start time)",
    "ck_lesion_code_format": "Lesion codes look like 'L01'",
    "ck_lesion_code_safe": "A lesion code uses only letters, digits, '.', '_' and '-'",
    "ck_lesion_size_positive": "A lesion's size is more than 0 mm",
    "ck_sampling_site_code_safe": "A sampling-site code uses only letters, digits, '.', '_' and '-'",
    "ck_sampling_site_lesion_iff_tumour_region": "A tumour region belongs to a lesion and is tumour tissue; other "
    "samples have no lesion and are not tumour tissue",
    "ck_sampling_site_autopsy_unless_premortem": "Only a pre-mortem blood draw is taken outside an autopsy",
    "ck_sampling_site_distance_not_negative": "The distance to the tumour cannot be negative",
    # specimens
    "ck_specimen_code_safe": "A specimen code uses only letters, digits, '.', '_' and '-' (no spaces or colons)",
    "ck_specimen_barcode_not_blank": "A barcode cannot be empty (leave it out instead)",
    "ck_specimen_parent_iff_not_primary": "A primary specimen has no parent; an aliquot or derivative has one",
    "ck_specimen_not_own_parent": "A specimen cannot be its own parent",
    "ck_specimen_stabilised_after_collected": "A specimen cannot be stabilised before it was collected",
    "ck_specimen_fixation_end_after_start": "Fixation cannot end before it started (and needs the time it started)",
    "ck_specimen_decalcification_hours_with_agent": "Decalcification hours need a decalcification agent "
    "(and cannot be negative)",
    "ck_specimen_ffpe_has_fixative": "An FFPE specimen needs its fixative",
    "ck_specimen_quantity_not_negative": "A quantity cannot be negative",
    "ck_specimen_remaining_within_quantity": "What remains lies between 0 and the quantity",
    "ck_specimen_used_not_negative": "The quantity used from the parent cannot be negative",
    "ck_specimen_concentration_not_negative": "A concentration cannot be negative",
    "ck_specimen_freeze_thaw_not_negative": "Freeze-thaw cycles cannot be negative",
    "ck_specimen_version_positive": "A specimen's version starts at 1",
    "ck_specimen_tumour_cellularity_range": "Tumour cellularity lies between 0 and 100 %",
    "ck_specimen_necrosis_range": "Necrosis lies between 0 and 100 %",
    "ck_specimen_yield_not_negative": "A yield cannot be negative",
    "ck_specimen_a260_280_range": "A260/280 lies between 0 and 5",
    "ck_specimen_rin_range": "RIN lies between 0 and 10",
    "ck_specimen_din_range": "DIN lies between 0 and 10",
    "ck_specimen_dv200_range": "DV200 lies between 0 and 100 %",
    "ck_specimen_a260_230_range": "A260/230 lies between 0 and 5",
    "ck_specimen_elution_volume_positive": "An elution volume is more than 0 ul",
    # storage and distribution
    "ck_container_code_safe": "A container code uses only letters, digits, '.', '_' and '-' (no spaces, colons or "
    "slashes)",
    "ck_container_only_sites_at_root": "Only a site stands at the top of the storage tree; everything else stands in "
    "another container",
    "ck_container_not_own_parent": "A container cannot stand inside itself",
    "ck_container_grid_size": "A container's grid has at least one row and one column",
    "ck_specimen_location_position_not_blank": "A position cannot be empty (leave it out for a container without "
    "a grid)",
    "ck_checkout_returned_after_out": "A specimen cannot come back before it was checked out",
    "ck_checkout_return_has_user": "A return records who returned the specimen",
    "ck_distribution_order_code_safe": "An order code uses only letters, digits, '.', '_' and '-'",
    "ck_distribution_order_study_not_blank": "An order names its study",
    "ck_distribution_order_recipient_not_blank": "An order names its recipient",
    "ck_distribution_order_approved_before_shipping": "An order is approved (by whom and when) before it goes on",
    "ck_distribution_order_shipped_after_approved": "An order cannot be shipped before it was approved",
    "ck_distribution_order_received_after_shipped": "An order cannot be received before it was shipped",
    "ck_distribution_order_shipment_recorded": "A shipped order records when, by whom and at what temperature it "
    "was shipped",
    "ck_distribution_order_receipt_recorded": "A received order records when it was received",
    "ck_distribution_item_quantity_positive": "An order item's quantity is more than 0",
    "ck_distribution_item_returned_within_quantity": "More cannot come back than was sent",
    # derived models
    "ck_derived_model_code_safe": "A model code uses only letters, digits, '.', '_' and '-'",
    "ck_derived_model_pdx_has_host_strain": "A PDX names its host strain (e.g. NSG)",
    "ck_derived_model_host_strain_name_not_blank": "A host strain cannot be empty",
    "ck_derived_model_pdx_fields_only_pdx": "Host strain, engraftment, tumour preparation and humanisation apply "
    "to a PDX only",
    "ck_derived_model_culture_fields_not_pdx": "Culture medium, matrix and growth properties apply to organoids "
    "and cell lines, not to a PDX",
    "ck_derived_model_humanisation_type_if_humanised": "A humanisation is given only for a humanised host",
    "ck_derived_model_established_has_date": "An established or cryobanked model has the day it was established",
    "ck_derived_model_established_after_initiated": "A model cannot be established before it was initiated",
    "ck_derived_model_failed_has_date": "A failed model has the day it failed",
    "ck_derived_model_failed_after_initiated": "A model cannot fail before it was initiated",
    "ck_derived_model_failed_never_established": "A model that failed was never established",
    "ck_derived_model_discontinued_has_date": "A discontinued model has the day it was discontinued",
    "ck_derived_model_ended_after_initiated": "A model cannot be discontinued before it was initiated",
    "ck_model_passage_label_safe": "A passage label uses only letters, digits, '.', '_' and '-'",
    "ck_model_passage_number_not_negative": "Passage numbers start at 0",
    "ck_model_passage_parent_iff_not_p0": "P0 has no parent passage; every later passage has one",
    "ck_model_passage_not_own_parent": "A passage cannot be its own parent",
    "ck_model_passage_latency_not_negative": "A latency cannot be negative",
    "ck_model_passage_doubling_time_positive": "A doubling time is more than 0 hours",
    "ck_model_passage_distribution_complete": "A distributed passage records both the day and the recipient",
    "ck_model_passage_distributed_after_passaged": "A passage cannot be distributed before it was made",
    "ck_model_qc_identity_match_range": "An identity match lies between 0 and 100 %",
    "ck_model_qc_mouse_content_range": "Mouse content lies between 0 and 100 %",
    "ck_model_qc_identity_match_has_method": "An identity match names its method (STR or SNP)",
    # analysis plans
    "ck_analysis_plan_code_safe": "A plan code uses only letters, digits, '.', '_' and '-'",
    "ck_analysis_plan_name_not_blank": "A plan needs a name",
    "ck_analysis_plan_target_depth_positive": "A target depth is more than 0",
    "ck_analysis_plan_approved_has_approver": "An approved plan records who approved it and when",
    "ck_analysis_plan_primary_site_or_unknown": "A plan names its primary site or marks it unknown, not both",
    "ck_analysis_plan_primary_unsampled_reason_not_blank": "A plan that declares its primary tumour unsampled "
    "gives the reason (leave it out when nothing is declared)",
    "ck_analysis_plan_version_positive": "Plan versions start at 1",
    "ck_analysis_plan_closed_reason_not_blank": "A superseded or cancelled plan says why (or nothing at all)",
    "ck_analysis_plan_flow_cell_not_blank": "A plan's flow cell kind is named (or left to the default)",
    "ck_plan_specimen_target_depth_positive": "A sample's target depth is more than 0",
    "ck_plan_specimen_library_not_blank": "A sample's library is named (or left to the plan's)",
    "ck_plan_specimen_reserved_not_negative": "A reserved quantity cannot be negative",
    # sequencing and results
    "ck_sequencing_run_run_id_not_blank": "A sequencing run needs its run id",
    "ck_sequencing_run_instrument_not_blank": "A sequencing run names its instrument",
    "ck_sequencing_run_completed_after_started": "A run cannot complete before it started",
    "ck_sequencing_result_read_count_not_negative": "A read count cannot be negative",
    "ck_sequencing_result_coverage_not_negative": "A mean coverage cannot be negative",
    "ck_sequencing_result_contamination_pct_range": "Contamination lies between 0 and 100 %",
    "ck_sequencing_result_purity_range": "Purity lies between 0 and 1",
    "ck_sequencing_result_ploidy_range": "Ploidy lies above 0 and at most 10",
    "ck_sequencing_file_uri_not_blank": "A data file needs its URI",
    "ck_sequencing_file_checksum_kind": "A checksum is md5 or sha256",
    "ck_sequencing_file_checksum_not_blank": "A data file needs its checksum",
    "ck_sequencing_file_size_not_negative": "A file size cannot be negative",
    "ck_analysis_result_code_safe": "A result code uses only letters, digits, '.', '_' and '-'",
    "ck_analysis_result_file_name_not_blank": "A result names the file it came from",
    "ck_analysis_result_sha256_length": "A result's SHA-256 has 64 hexadecimal digits",
    # attachments
    "ck_attachment_target_code_not_blank": "An attachment names the record it belongs to",
    "ck_attachment_filename_not_blank": "An attachment keeps its file name",
    "ck_attachment_caption_not_blank": "A caption cannot be blank (leave it out instead)",
    "ck_attachment_taken_by_not_blank": "Who took it cannot be blank (leave it out instead)",
    "ck_attachment_sha256_length": "An attachment's SHA-256 has 64 hexadecimal digits",
    "ck_attachment_thumbnail_sha256_length": "A thumbnail's SHA-256 has 64 hexadecimal digits",
    "ck_attachment_original_sha256_length": "An original's SHA-256 has 64 hexadecimal digits",
    "ck_attachment_size_not_negative": "A file size cannot be negative",
    "ck_attachment_retraction_recorded": "A retracted attachment records when it was retracted and why",
    # the export log
    "ck_export_record_target_not_blank": "An export names its target",
    "ck_export_record_donor_count_not_negative": "An export carries zero or more donors",
    "ck_export_record_specimen_count_not_negative": "An export carries zero or more specimens",
}

#: CHECKs that a column holds a value of its vocabulary (``models.base.one_of``): table -> columns.
VOCABULARY_CHECKS: dict[str, tuple[str, ...]] = {
    "user_account": ("role",),
    "analysis_plan": ("status", "assay", "purpose"),
    "plan_specimen": ("role", "assay"),
    "sequencing_result": ("outcome",),
    "analysis_result": ("tool", "kind"),
    "attachment": ("target", "kind", "state"),
    "audit_log": ("action",),
    "container": ("temperature_class", "kind"),
    "distribution_order": ("use", "status", "shipping_temperature"),
    "donor": ("status", "sex", "er_status", "pr_status", "her2_status"),
    "autopsy": ("status",),
    "clinical_event": ("kind",),
    "consent": ("given_by", "change"),
    "consent_withdrawal": ("requested_by", "material"),
    "lesion": ("kind", "laterality", "bone_phenotype", "imaging_response", "er_status", "pr_status", "her2_status"),
    "treatment_line": ("category", "intent", "best_response"),
    "sampling_site": ("kind", "tissue_status", "laterality"),
    "specimen": (
        "lineage", "material_type", "storage_format", "fixative", "decalcification_agent", "unit", "status",
        "er_status", "pr_status", "her2_status",
    ),
    "custody_event": ("kind",),
    "derived_model": ("kind", "status", "engraftment_type", "tumour_preparation", "matrix", "growth_properties"),
    "model_qc": ("mycoplasma", "identity_method"),
}

#: Tables whose rows are never changed or deleted (``ddl.forbid_changes``): the reason, and what to do instead.
_APPEND_ONLY: dict[str, str] = {
    "audit_log": "The audit trail is never changed or deleted",
    "custody_event": "The chain of custody is never changed or deleted; record a new event instead",
    "consent_withdrawal": "A withdrawal of consent is never changed or deleted",
    "export_record": "The export log is never changed or deleted",
    "export_donor": "The export log is never changed or deleted",
    "specimen": "Specimens are never deleted; dispose of the specimen instead",
    "derived_model": "Derived models are never deleted; mark the model failed or discontinued instead",
    "model_passage": "Passages are never deleted; correct the record instead",
    "model_qc": "QC results are never deleted; record a new QC result instead",
    "attachment": "Attachments are never deleted; retract the attachment instead",
}

#: Triggers: rules a CHECK cannot express (DDL in the migrations, :mod:`biobank.db.ddl`).
_TRIGGERS: dict[str, str] = {
    "tg_specimen_collected_after_death": "A specimen cannot be collected before the donor's death (only a pre-mortem "
    "blood draw can)",
    "tg_sampling_site_excised_after_death": "Material cannot be excised before the donor's death (only a pre-mortem "
    "blood draw can)",
    "tg_specimen_location_in_specimen_holder": "Specimens go into boxes, bags, bins, slide boxes or cassette drawers, "
    "not into this kind of container",
    "tg_specimen_location_position_matches_grid": "A container with a grid needs a position, and one without a grid "
    "takes none",
    "tg_derived_model_viable_source": "A model is derived from a fresh or viable cryopreserved specimen",
    "tg_derived_model_status_transition": "This change of the model's status is not allowed",
    "tg_model_passage_number_follows_parent": "A passage number is its parent passage's number plus one",
    "tg_specimen_passage_same_donor": "A specimen from a passage belongs to the donor of the model",
    "tg_plan_donor_plan_is_draft": "The plan is no longer a draft; its donors and specimens cannot change",
    "tg_plan_specimen_plan_is_draft": "The plan is no longer a draft; its donors and specimens cannot change",
    **{
        f"tg_{table}_no_{verb}": sentence
        for table, sentence in _APPEND_ONLY.items()
        for verb in ("update", "delete", "truncate")
    },
}


def _vocabulary_sentences() -> dict[str, str]:
    return {
        f"ck_{table}_{column}": f"{label_of(column)} must be one of the values on its list"
        for table, columns in VOCABULARY_CHECKS.items()
        for column in columns
    }


#: Every named rule of the schema -> the sentence a person reads when the database refuses a change.
SENTENCES: dict[str, str] = {**_UNIQUE, **_CHECKS, **_vocabulary_sentences(), **_TRIGGERS}

_UNIQUE_SQLITE = re.compile(r"UNIQUE constraint failed: (?P<cols>[\w., ]+)")
_CHECK_SQLITE = re.compile(r"CHECK constraint failed: (?P<name>\w+)")
_TRIGGER = re.compile(r"\b(?P<name>tg_\w+): (?P<message>[^\n]+)")


def constraint_name(exc: IntegrityError) -> str | None:
    """The violated constraint's name, from psycopg's diagnostics or SQLite's message."""
    diag = getattr(exc.orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return str(diag.constraint_name)
    text = str(exc.orig)
    if match := _CHECK_SQLITE.search(text):
        return match.group("name")
    if match := _UNIQUE_SQLITE.search(text):
        cols = [c.strip() for c in match.group("cols").split(",")]
        table = cols[0].split(".")[0]
        return "uq_" + table + "_" + "_".join(c.split(".")[1] for c in cols)
    return None


def translate_integrity_error(exc: IntegrityError) -> BiobankError:
    """The refusal as the project's error: its sentence as the message, the rule's name as ``field``."""
    text = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
    if match := _TRIGGER.search(text):
        name = match.group("name")
        sentence = SENTENCES.get(name) or match.group("message")
        return ValidationError(sentence, field=name, reason=sentence)
    name = constraint_name(exc)
    if name is None:
        if "FOREIGN KEY" in text.upper():
            sentence = "This refers to a record that does not exist, or that belongs to another donor"
            return ValidationError(sentence, reason=sentence)
        return ConflictError(f"The database refused the change ({text})")
    sentence = SENTENCES.get(name) or f"The database refused the change (rule {name})"
    if name.startswith(("uq_", "pk_", "ix_")):
        return ConflictError(sentence, field=name, reason=sentence)
    return ValidationError(sentence, field=name, reason=sentence)
