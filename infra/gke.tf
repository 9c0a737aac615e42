resource "google_container_cluster" "textclf" {
  name                     = var.cluster_name
  location                 = var.zone
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = var.deletion_protection
  network                  = google_compute_network.textclf.id
  subnetwork               = google_compute_subnetwork.nodes.id
  resource_labels          = { app = "textclf" }

  release_channel {
    channel = "REGULAR"
  }

  # Pods get Google credentials from their Kubernetes service account: no key files anywhere.
  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  # Dataplane V2 (eBPF): enforces the NetworkPolicies of manifests/setup and manifests/kubeflow-network.
  datapath_provider = "ADVANCED_DATAPATH"
  network_policy {
    enabled = false # Calico's enforcement stays off: Dataplane V2 does it
  }

  # VPC-native: pod and Service addresses from the subnetwork's secondary ranges (network.tf).
  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  # Nodes without public addresses. The control plane keeps a public endpoint, reachable only from
  # authorized_networks (set private_endpoint = true to remove it: kubectl then runs inside the VPC).
  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = var.private_endpoint
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block
  }

  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  # No client certificates: every caller authenticates with Google credentials.
  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  enable_shielded_nodes       = true
  enable_intranode_visibility = true

  # Only images the project's Binary Authorization policy admits (by default: all, with the audit
  # trail; tighten the policy to require attestations from your build).
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  # The default pool is removed at creation; these settings keep even it hardened meanwhile.
  node_config {
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  depends_on = [google_project_service.apis, google_compute_router_nat.nat]
}

resource "google_container_node_pool" "cpu" {
  name     = "cpu"
  cluster  = google_container_cluster.textclf.id
  location = var.zone

  autoscaling {
    min_node_count = var.cpu_min_nodes
    max_node_count = var.cpu_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.cpu_machine_type
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# Scales from zero: nodes exist only while a training step or a GPU predictor asks for a GPU.
# The taint keeps every other pod off these expensive nodes; our GPU pods tolerate it.
resource "google_container_node_pool" "gpu" {
  name               = "gpu"
  cluster            = google_container_cluster.textclf.id
  location           = var.zone
  initial_node_count = 0

  autoscaling {
    min_node_count = 0
    max_node_count = var.gpu_max_nodes
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.gpu_machine_type
    spot            = var.gpu_spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    guest_accelerator {
      type  = var.gpu_accelerator_type
      count = var.gpus_per_node
      # GKE-installed drivers are signed, so they load with Secure Boot on.
      gpu_driver_installation_config {
        gpu_driver_version = "LATEST"
      }
    }

    taint {
      key    = "nvidia.com/gpu"
      value  = "present"
      effect = "NO_SCHEDULE"
    }

    labels = {
      "textclf/pool" = "gpu"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
