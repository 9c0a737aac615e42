variable "project_id" {
  description = "GCP project to create everything in (an empty project with billing enabled is enough)."
  type        = string
}

variable "region" {
  description = "Region of the bucket and the Artifact Registry repository."
  type        = string
  default     = "us-central1"
}

variable "zone" {
  description = "Zone of the (zonal, cheaper) GKE cluster; must offer gpu_accelerator_type."
  type        = string
  default     = "us-central1-a"
}

variable "cluster_name" {
  description = "Name of the GKE cluster."
  type        = string
  default     = "textclf"
}

variable "cpu_machine_type" {
  description = "Machine type of the CPU node pool (KFP, KServe, Knative, CPU predictors, pipeline steps)."
  type        = string
  default     = "e2-standard-8"
}

variable "cpu_min_nodes" {
  description = "Fewest CPU nodes; KFP and Knative's control planes need at least one."
  type        = number
  default     = 1
}

variable "cpu_max_nodes" {
  description = "Most CPU nodes the autoscaler may add."
  type        = number
  default     = 4
}

variable "gpu_accelerator_type" {
  description = "GPU type of the GPU node pool, e.g. nvidia-l4, nvidia-tesla-t4, nvidia-tesla-a100. Must match the gke-accelerator node selector in manifests/overlays/gpu and the pipeline's accelerator setting."
  type        = string
  default     = "nvidia-l4"
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU nodes; must be one that accepts gpu_accelerator_type (g2-* for L4, n1-* for T4, a2-* for A100)."
  type        = string
  default     = "g2-standard-8"
}

variable "gpus_per_node" {
  description = "GPUs attached to each GPU node."
  type        = number
  default     = 1
}

variable "gpu_max_nodes" {
  description = "Most GPU nodes; the pool starts at zero and scales back to zero when no training step or GPU predictor needs it. A multi-node training run (num_nodes) needs that many at once."
  type        = number
  default     = 2
}

variable "gpu_spot" {
  description = "Use Spot VMs for GPU nodes (much cheaper). A preempted training step is retried (KFP) or restarted (TrainJob) and resumes from its last checkpoint, so it loses at most checkpoint_every_minutes of training."
  type        = bool
  default     = true
}

variable "bucket_name" {
  description = "GCS bucket for pipeline roots and models; empty means PROJECT_ID-textclf."
  type        = string
  default     = ""
}

variable "kfp_namespace" {
  description = "Namespace of standalone Kubeflow Pipelines; its pipeline-runner service account runs every step."
  type        = string
  default     = "kubeflow"
}

variable "serving_namespace" {
  description = "Namespace of the InferenceService (manifests/setup/namespace.yaml)."
  type        = string
  default     = "textclf"
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster; set false for throw-away projects."
  type        = bool
  default     = true
}

variable "authorized_networks" {
  description = "CIDR blocks allowed to reach the cluster's control plane endpoint (your office or VPN egress, the CI runners). Empty: nobody from outside the VPC."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []
}

variable "private_endpoint" {
  description = "Give the control plane no public endpoint at all (kubectl and the install script must then run inside the VPC, e.g. through IAP or a bastion)."
  type        = bool
  default     = false
}

variable "master_ipv4_cidr_block" {
  description = "The /28 range of the private control plane; manifests/kubeflow-network lets it reach KFP's admission webhook."
  type        = string
  default     = "172.16.0.0/28"
}

variable "nodes_cidr" {
  description = "Primary range of the nodes' subnetwork."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for pod addresses (VPC-native cluster)."
  type        = string
  default     = "10.20.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for Service addresses (VPC-native cluster)."
  type        = string
  default     = "10.30.0.0/20"
}
