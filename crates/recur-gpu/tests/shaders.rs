//! Every kernel variant the launchers can record is preprocessed, validated
//! by naga and translated to SPIR-V, MSL, HLSL and GLSL. No GPU needed: this
//! is how we know the kernels port to Vulkan, Metal, DX12 and GL.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use recur_gpu::kernel::{preprocess, KernelKey};

fn compile(key: &KernelKey) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = key.source().unwrap_or_else(|e| panic!("{key:?}: {e}"));
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{key:?}: {}", e.emit_to_string(&src)));
    // pack2x16float needs the first capability; wgpu grants it on Vulkan,
    // Metal, DX12 and most GL drivers. Subgroup variants are only recorded
    // when the device has SUBGROUP.
    // f16 storage variants are recorded only on devices with SHADER_F16,
    // the cooperative-matrix GEMM only with COOPERATIVE_MATRIX.
    let info = Validator::new(
        ValidationFlags::all(),
        Capabilities::SHADER_FLOAT16_IN_FLOAT32
            | Capabilities::SUBGROUP
            | Capabilities::SHADER_FLOAT16
            | Capabilities::COOPERATIVE_MATRIX,
    )
    .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
    .subgroup_operations(naga::valid::SubgroupOperationSet::all())
    .validate(&module)
    .unwrap_or_else(|e| panic!("{key:?}: {}", e.emit_to_string(&src)));
    (module, info)
}

#[test]
fn shaders_validate_and_translate_to_every_backend() {
    let variants = recur_gpu::ops::kernel_variants();
    assert!(
        variants.len() >= 30,
        "only {} variants registered",
        variants.len()
    );
    for key in &variants {
        let (module, info) = compile(key);
        assert!(
            module.entry_points.iter().any(|e| e.name == key.entry),
            "{key:?}: entry point missing"
        );
        let entry = key.entry.to_string();
        spv::write_vec(
            &module,
            &info,
            &spv::Options::default(),
            Some(&spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry.clone(),
            }),
        )
        .unwrap_or_else(|e| panic!("{key:?}: SPIR-V: {e}"));
        // wgpu offers 16x16 f16 cooperative matrices through Vulkan only.
        if key.shader == "gemm_coop" {
            continue;
        }
        msl::write_string(
            &module,
            &info,
            &msl::Options::default(),
            &msl::PipelineOptions {
                entry_point: Some((naga::ShaderStage::Compute, entry.clone())),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{key:?}: MSL: {e}"));
        let mut out = String::new();
        hlsl::Writer::new(
            &mut out,
            &hlsl::Options::default(),
            &hlsl::PipelineOptions {
                entry_point: Some((naga::ShaderStage::Compute, entry.clone())),
            },
        )
        .write(&module, &info, None)
        .unwrap_or_else(|e| panic!("{key:?}: HLSL: {e}"));
        // wgpu's GL backend never offers SHADER_F16.
        if key.defines.contains_key("F16") {
            continue;
        }
        let mut out = String::new();
        let options = glsl::Options {
            version: glsl::Version::Embedded {
                version: 310,
                is_webgl: false,
            },
            ..Default::default()
        };
        glsl::Writer::new(
            &mut out,
            &module,
            &info,
            &options,
            &glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: entry.clone(),
                multiview: None,
            },
            naga::proc::BoundsCheckPolicies::default(),
        )
        .and_then(|mut w| w.write())
        .unwrap_or_else(|e| panic!("{key:?}: GLSL: {e}"));
    }
}

#[test]
fn every_entry_point_is_recorded_by_some_launcher() {
    let variants = recur_gpu::ops::kernel_variants();
    let mut entries = 0;
    for name in recur_gpu::kernel::shader_names() {
        let declared = recur_gpu::kernel::entry_points(name);
        assert!(
            !declared.is_empty(),
            "shaders/{name}.wgsl has no entry point"
        );
        for entry in declared {
            entries += 1;
            assert!(
                variants
                    .iter()
                    .any(|k| k.shader == name && k.entry == entry),
                "shaders/{name}.wgsl: {entry} is in no launcher's variants"
            );
        }
    }
    assert!(entries >= 40, "only {entries} entry points found");
}

/// The generated bindings of every recorded variant are the bindings naga
/// reads from that variant's source: defines change element types, never
/// which bindings an entry point has or how it accesses them.
#[test]
fn every_variant_binds_what_its_generated_bindings_declare() {
    for key in &recur_gpu::ops::kernel_variants() {
        let (module, _) = compile(key);
        let mut got: Vec<(u32, String, bool)> = module
            .global_variables
            .iter()
            .filter_map(|(_, g)| {
                let b = g.binding.as_ref()?;
                match g.space {
                    naga::AddressSpace::Storage { access } => Some((
                        b.binding,
                        g.name.clone().unwrap_or_default(),
                        access.contains(naga::StorageAccess::STORE),
                    )),
                    _ => None,
                }
            })
            .collect();
        got.sort();
        let want = recur_gpu::bindings::declared(key.shader, key.entry)
            .unwrap_or_else(|| panic!("{key:?}: no generated bindings"));
        let want: Vec<(u32, String, bool)> = want
            .iter()
            .enumerate()
            .map(|(i, (name, access))| {
                (
                    i as u32 + 1,
                    name.to_string(),
                    *access == recur_gpu::kernel::Access::ReadWrite,
                )
            })
            .collect();
        assert_eq!(got, want, "{key:?}");
    }
}

#[test]
fn preprocessor_resolves_imports_defines_and_conditionals() {
    let key = KernelKey::new("gemm", "gemm")
        .flag("TRANS_A", true)
        .define("BK", "16u");
    let src = preprocess(key.shader, &key.defines).unwrap();
    assert!(
        src.contains("fn sigmoid_f"),
        "#import activations was not inlined"
    );
    assert!(
        src.contains("const BK = 16u;"),
        "host define did not override the shader's default"
    );
    assert!(!src.contains("const BK = 32u;"));
    assert!(
        src.contains("return vec2<u32>(1u, p.lda);"),
        "TRANS_A branch missing"
    );
    assert!(
        !src.contains("return vec2<u32>(p.lda, 1u);"),
        "#else branch should be dropped"
    );
    assert_eq!(
        src.matches("fn sigmoid_f").count(),
        1,
        "an import was inlined twice"
    );
    assert!(!src.contains("#ifdef") && !src.contains("#import"));
    let plain = preprocess("gemm", &KernelKey::new("gemm", "gemm").defines).unwrap();
    assert!(plain.contains("const BK = 32u;"));
    assert!(matches!(
        preprocess("no_such_shader", &Default::default()),
        Err(recur_gpu::Error::Shader { .. })
    ));
}
