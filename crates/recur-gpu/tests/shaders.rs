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
    let info = Validator::new(
        ValidationFlags::all(),
        Capabilities::SHADER_FLOAT16_IN_FLOAT32 | Capabilities::SUBGROUP,
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
fn every_shader_file_is_used_by_some_launcher() {
    let variants = recur_gpu::ops::kernel_variants();
    for name in recur_gpu::kernel::shader_names() {
        assert!(
            variants.iter().any(|k| k.shader == name),
            "shaders/{name}.wgsl has no launcher"
        );
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
