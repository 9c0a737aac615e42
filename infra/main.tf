locals {
  bucket_name = var.bucket_name != "" ? var.bucket_name : "${var.project_id}-textclf"
  # Kubernetes service accounts that impersonate Google service accounts (Workload Identity).
  pipelines_ksa = "${var.kfp_namespace}/pipeline-runner"
  serving_ksa   = "${var.serving_namespace}/textclf-serving"
  monitor_ksa   = "${var.serving_namespace}/textclf-monitor"
  # IAM condition of the model readers (iam.tf): Model artifacts and the bucket itself (for listing).
  objects = "projects/_/buckets/${local.bucket_name}/objects"
  models_only = join(" || ", [
    "resource.type == \"storage.googleapis.com/Bucket\"",
    "resource.name.startsWith(\"${local.objects}/models/\")",
    "resource.name.matches(\"^${local.objects}/pipeline-root/.+/model/.+$\")",
  ])
  apis = [
    "container.googleapis.com",
    "artifactregistry.googleapis.com",
    "storage.googleapis.com",
    "iam.googleapis.com",
    "aiplatform.googleapis.com",
    "compute.googleapis.com",
    "binaryauthorization.googleapis.com",
  ]
}

resource "google_project_service" "apis" {
  for_each           = toset(local.apis)
  service            = each.value
  disable_on_destroy = false
}

# Pipeline roots (gs://BUCKET/pipeline-root) and models (gs://BUCKET/models).
resource "google_storage_bucket" "artifacts" {
  name                        = local.bucket_name
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = !var.deletion_protection
  versioning {
    enabled = true
  }
  depends_on = [google_project_service.apis]
}

# Our three images: textclf-components, textclf-trainer, textclf-server (components/images.py).
resource "google_artifact_registry_repository" "images" {
  repository_id = "textclf"
  location      = var.region
  format        = "DOCKER"
  description   = "textclf pipeline, trainer and server images"
  depends_on    = [google_project_service.apis]
}
