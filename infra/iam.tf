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

# Serving: KServe's storage initializer in each predictor pod downloads the model; read-only.
resource "google_service_account" "serving" {
  account_id   = "textclf-serving"
  display_name = "textclf KServe predictor"
}

resource "google_storage_bucket_iam_member" "serving_models" {
  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.serving.email}"
}

resource "google_service_account_iam_member" "serving_workload_identity" {
  service_account_id = google_service_account.serving.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${local.serving_ksa}]"
}
