output "cluster_name" {
  description = "GKE cluster name."
  value       = google_container_cluster.textclf.name
}

output "get_credentials" {
  description = "Command that points kubectl (and python -m serving.rollout) at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.textclf.name} --zone ${var.zone} --project ${var.project_id}"
}

output "bucket" {
  description = "Bucket for pipeline roots and models."
  value       = "gs://${google_storage_bucket.artifacts.name}"
}

output "pipeline_root" {
  description = "Pipeline root to compile/submit with."
  value       = "gs://${google_storage_bucket.artifacts.name}/pipeline-root"
}

output "image_registry" {
  description = "TEXTCLF_IMAGE_REGISTRY / make images IMAGE_REGISTRY=... value."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "pipelines_service_account" {
  description = "Google service account of kubeflow/pipeline-runner (annotate the KSA with it)."
  value       = google_service_account.pipelines.email
}

output "serving_service_account" {
  description = "Google service account of textclf/textclf-serving (manifests/setup/serviceaccount.yaml)."
  value       = google_service_account.serving.email
}

output "monitor_service_account" {
  description = "Google service account of textclf/textclf-monitor (manifests/setup/serviceaccount.yaml)."
  value       = google_service_account.monitor.email
}
