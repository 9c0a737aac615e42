# One Google service account per workload, each with the least it needs (docs/security.md).

# Nodes: pull our images, write logs and metrics. Nothing else.
resource "google_service_account" "nodes" {
  account_id   = "textclf-nodes"
  display_name = "textclf GKE nodes"
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/artifactregistry.reader",
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.nodes.email}"
}

# Pipelines: every KFP step runs as kubeflow/pipeline-runner and reads/writes the pipeline root.
resource "google_service_account" "pipelines" {
  account_id   = "textclf-pipelines"
  display_name = "textclf Kubeflow Pipelines runner"
}

resource "google_storage_bucket_iam_member" "pipelines_artifacts" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.pipelines.email}"
}

resource "google_service_account_iam_member" "pipelines_workload_identity" {
  service_account_id = google_service_account.pipelines.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${local.pipelines_ksa}]"
}

# Serving (internet-facing, through the gateway) and the drift monitor: each its own account, both
# reading models only. A Model artifact is a `model/` folder of a run in the pipeline root (where the
# deploy step's storageUri points) or anything under models/; datasets, tokenized data, evaluations
# and checkpoints stay out of reach. Listing is a bucket-level permission, so object names (not
# contents) stay visible: the storage initializer lists a model's folder before it downloads.
resource "google_service_account" "serving" {
  account_id   = "textclf-serving"
  display_name = "textclf KServe predictor"
}

resource "google_service_account" "monitor" {
  account_id   = "textclf-monitor"
  display_name = "textclf drift monitor"
}

resource "google_storage_bucket_iam_member" "models_readers" {
  for_each = {
    serving = google_service_account.serving.email
    monitor = google_service_account.monitor.email
  }
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${each.value}"
  condition {
    title       = "models-only"
    description = "Model artifacts (models/ and pipeline-root/**/model/) and the bucket listing"
    expression  = local.models_only
  }
}

resource "google_service_account_iam_member" "serving_workload_identity" {
  service_account_id = google_service_account.serving.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${local.serving_ksa}]"
}

resource "google_service_account_iam_member" "monitor_workload_identity" {
  service_account_id = google_service_account.monitor.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${local.monitor_ksa}]"
}

# Who read or wrote which object, with the caller's identity: Cloud Audit Logs' data access logs.
resource "google_project_iam_audit_config" "storage" {
  project = var.project_id
  service = "storage.googleapis.com"
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
